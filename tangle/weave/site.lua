-- tangle/weave/site.lua: weave caracal's notes into a static site.
-- Run by tangle/weave/site inside one pandoc process; notes/docs-site.org
-- explains what the site shows and why it is built this way.
--
-- Two passes over every note.  The first reads all notes and builds the
-- cross-reference tables (ids -> pages, links -> backlinks, fragment names ->
-- where defined and where used, note lines -> block anchors); the second
-- writes one page per note, one page per tangled file, the search index and
-- the assets.  Everything is sorted and nothing depends on the clock, so the
-- same notes give the same bytes.

local ROOT = os.getenv("WEAVE_ROOT")
local OUT = os.getenv("WEAVE_OUT")
local SOURCEMAP = os.getenv("WEAVE_SOURCEMAP")
local ASSETS = os.getenv("WEAVE_ASSETS")
local ROOT_NOTE_ID = "4ED73BAB-481F-4CFA-9449-EA46446C07DF"
local SITE_NAME = "caracal"

local stringify = pandoc.utils.stringify

-- ---------------------------------------------------------------------------
-- Small helpers

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local written, kept = 0, 0
local produced = {}   -- relative path -> true: everything this run makes

-- Write OUT/rel only when its bytes differ, through a temporary file.
local function write_out(rel, data)
  produced[rel] = true
  local path = OUT .. "/" .. rel
  if read_file(path) == data then kept = kept + 1; return end
  local dir = path:match("^(.*)/[^/]*$")
  os.execute("mkdir -p '" .. dir .. "'")
  local tmp = path .. ".weave-tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  assert(os.rename(tmp, path))
  written = written + 1
end

local function esc(s)
  return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
end

local function slugify(s)
  s = s:lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  if s == "" then s = "section" end
  return s
end

local function lines_of(text)
  local t = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do t[#t + 1] = line end
  if t[#t] == "" then t[#t] = nil end
  return t
end

local function sorted_keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k)
  return k
end

-- A path relative to the site root, as seen from a page at depth `depth`.
local function up(depth) return string.rep("../", depth) end

-- ---------------------------------------------------------------------------
-- Pass 1: scan and read every note

-- The scanner reads the note's lines (pandoc keeps no line numbers): headings,
-- source blocks with their #+NAME, and it tags each #+begin_src line with its
-- number as an extra header argument, which pandoc hands back as an attribute.
local function scan_note(path, text)
  local lines = lines_of(text)
  local note = { path = path, headings = {}, blocks = {}, id = nil }
  local out = {}
  local in_block, pending_name = nil, nil
  for n, line in ipairs(lines) do
    local o = line
    if in_block then
      if line:match("^%s*#%+[eE][nN][dD]_[sS][rR][cC]") then
        in_block.last = n
        in_block = nil
      end
    else
      local stars, title = line:match("^(%*+)%s+(.-)%s*$")
      local name = line:match("^%s*#%+[nN][aA][mM][eE]:%s*(%S+)")
      if stars then
        note.headings[#note.headings + 1] = { line = n, level = #stars, title = title }
        pending_name = nil
      elseif name then
        pending_name = name
      elseif line:match("^%s*#%+[bB][eE][gG][iI][nN]_[sS][rR][cC]") then
        local b = { first = n, name = pending_name, args = line }
        note.blocks[#note.blocks + 1] = b
        in_block = b
        pending_name = nil
        o = line .. " :weave-line " .. n
      elseif line:match("^%s*:ID:%s*%S+") then
        -- The note's own ID sits above every heading; a heading's in its drawer.
        local id = line:match("^%s*:ID:%s*(%S+)")
        local h = note.headings[#note.headings]
        if h then h.id = h.id or id elseif not note.id then note.id = id end
      end
      if not name and line:match("%S") and not line:match("^%s*#%+[bB][eE][gG][iI][nN]_[sS][rR][cC]") then
        pending_name = nil
      end
    end
    out[#out + 1] = o
  end
  note.text = table.concat(out, "\n") .. "\n"
  note.lines = lines
  return note
end

local notes, by_path, by_id, by_heading_id = {}, {}, {}, {}
for path in (os.getenv("WEAVE_NOTES") or ""):gmatch("%S+") do
  local text = assert(read_file(ROOT .. "/" .. path), path)
  local note = scan_note(path, text)
  note.stem = path:match("([^/]+)%.org$")
  note.page = (note.id == ROOT_NOTE_ID) and "index.html" or (note.stem .. ".html")
  note.doc = pandoc.read(note.text, "org")
  note.title = stringify(note.doc.meta.title or note.stem)
  if note.title == "" then note.title = note.stem end
  notes[#notes + 1] = note
  by_path[path] = note
  if note.id then by_id[note.id] = note end
end
-- The root note first, then by title: the order of the table of contents.
table.sort(notes, function(a, b)
  if (a.page == "index.html") ~= (b.page == "index.html") then return a.page == "index.html" end
  return a.title:lower() < b.title:lower()
end)

-- Heading anchors: a slug of the title, made unique within the page.  pandoc's
-- own ids are dropped (a heading with an :ID: drawer gets two of them).
for _, note in ipairs(notes) do
  local used, hi = {}, 0
  for _, h in ipairs(note.headings) do
    local s = slugify(h.title)
    if used[s] then local k = 2; while used[s .. "-" .. k] do k = k + 1 end; s = s .. "-" .. k end
    used[s] = true
    h.anchor = s
    if h.id then by_heading_id[h.id] = { note = note, heading = h } end
  end
  -- Each block: the heading it sits under and its number there (Org's
  -- "Heading:N" in the link comments); a named block is a fragment.
  local hidx, count = 0, {}
  for _, b in ipairs(note.blocks) do
    while hidx < #note.headings and note.headings[hidx + 1].line < b.first do hidx = hidx + 1 end
    local h = note.headings[hidx]
    count[hidx] = (count[hidx] or 0) + 1
    b.heading = h
    b.index = count[hidx]
    b.lang = b.args:match("#%+%a+_%a+%s+(%S+)") or ""
    b.tangle = b.args:match(":tangle%s+(%S+)")
    if b.tangle == "no" then b.tangle = nil end
    if b.tangle then b.tangle = b.tangle:gsub("^%.%./", "") end
    b.anchor = b.name and ("f-" .. slugify(b.name))
      or ((h and h.anchor or "top") .. "-" .. b.index)
    b.label = (h and h.title or note.title) .. ":" .. b.index
    -- The body as Org shows and tangles it: the comma that protects a line
    -- starting with * or #+ inside a block is not part of the code.
    local body = {}
    for i = b.first + 1, (b.last or b.first + 1) - 1 do
      local l = note.lines[i]
      l = l:gsub("^(%s*),(,*%*)", "%1%2"):gsub("^(%s*),(,*#%+)", "%1%2")
      body[#body + 1] = l
    end
    b.body = table.concat(body, "\n")
    b.note = note
  end
  for _, b in ipairs(note.blocks) do note.blocks[b.first] = b end
end

-- Fragments: where each name is defined, and which blocks use it.
local fragments, used_by = {}, {}
for _, note in ipairs(notes) do
  for _, b in ipairs(note.blocks) do
    if b.name then fragments[b.name] = fragments[b.name] or b end
  end
end
for _, note in ipairs(notes) do
  for _, b in ipairs(note.blocks) do
    b.refs = {}
    for ref in b.body:gmatch("<<([^%s<>]+)>>") do
      if fragments[ref] and not b.refs[ref] then
        b.refs[ref] = true
        used_by[ref] = used_by[ref] or {}
        table.insert(used_by[ref], b)
      end
    end
  end
end

-- The source map: for every tangled file, each line's note and note line.
-- Rows are "file start count note note_start", one per run of lines.
local files = {}     -- tangled file -> { [line] = {note, note_line} }
for row in (read_file(SOURCEMAP) or ""):gmatch("[^\n]+") do
  local file, start, count, npath, nstart = row:match("^(.-)\t(%d+)\t(%d+)\t(.-)\t(%d+)$")
  if file then
    files[file] = files[file] or {}
    for i = 0, tonumber(count) - 1 do
      files[file][tonumber(start) + i] = { npath, tonumber(nstart) + i }
    end
  end
end

-- The block of a note that holds a note line.
local function block_at(npath, nline)
  local note = by_path[npath]
  if not note then return nil end
  for _, b in ipairs(note.blocks) do
    if nline >= b.first and nline <= (b.last or b.first) then return b end
  end
  return nil
end

-- First line of each tangled file that a block's text lands on.
for _, file in ipairs(sorted_keys(files)) do
  local map = files[file]
  for _, line in ipairs(sorted_keys(map)) do
    local m = map[line]
    local b = block_at(m[1], m[2])
    if b then
      b.lands = b.lands or {}
      if not b.lands[file] then b.lands[file] = line end
    end
  end
end

-- ---------------------------------------------------------------------------
-- Links between notes

-- Where an Org link target goes, as an href from a page at `depth`.
local function resolve_target(note, target, depth)
  local id = target:match("^id:(.+)$")
  if id then
    local t = by_id[id]
    if t then return up(depth) .. t.page, t end
    local hd = by_heading_id[id]
    if hd then return up(depth) .. hd.note.page .. "#" .. hd.heading.anchor, hd.note end
    return nil
  end
  local heading = target:match("^%*(.+)$")
  if heading then
    for _, h in ipairs(note.headings) do
      if h.title == heading then return "#" .. h.anchor end
    end
    return nil
  end
  local file = target:gsub("^file:", "")
  if target:match("^%a[%w+.-]*://") or target:match("^mailto:") then return target end
  -- Relative to the note's folder (notes/), or to the repository (README).
  local rel = file:gsub("::.*$", "")
  local from_repo = rel:gsub("^%.%./", "")
  if rel:match("^notes/") then from_repo = rel end
  if not rel:match("^%.%./") and not rel:match("^notes/") and not rel:match("/") then
    from_repo = "notes/" .. rel
  end
  local t = by_path[from_repo]
  if t then return up(depth) .. t.page, t end
  if files[from_repo] then return up(depth) .. from_repo .. ".html" end
  if from_repo:match("^diagrams/.+%.svg$") then return up(depth) .. from_repo end
  return nil
end

-- Backlinks: for every note, the notes (and headings) that link to it.
local backlinks = {}
for _, note in ipairs(notes) do
  local heading, hidx = nil, 0
  for _, blk in ipairs(note.doc.blocks) do
    if blk.t == "Header" then
      hidx = hidx + 1
      heading = note.headings[hidx] or { title = stringify(blk.content), anchor = "" }
    end
    pandoc.walk_block(pandoc.Div({ blk }), {
      Link = function(l)
        local _, t = resolve_target(note, l.target, 0)
        if t and t ~= note then
          backlinks[t] = backlinks[t] or {}
          local key = note.page .. "\0" .. (heading and heading.anchor or "")
          if not backlinks[t][key] then
            backlinks[t][key] = { note = note, heading = heading and stringify(pandoc.read(heading.title, "org").blocks),
              anchor = heading and heading.anchor or "" }
          end
        end
      end,
    })
  end
end

-- ---------------------------------------------------------------------------
-- Code rendering

local LANG = { cpp = "cpp", sh = "bash", bash = "bash", ["emacs-lisp"] = "commonlisp",
  ruby = "ruby", org = "", mermaid = "", hpp = "cpp", text = "" }

-- One HTML string per line of `text`, highlighted by pandoc's skylighting
-- when it knows the language, else just escaped.  pandoc.write costs the same
-- for one block as for hundreds, so every block and file is highlighted in
-- one batch (highlight_all) before the pages are written.
local hl_cache, hl_pending = {}, {}

local function syntax_of(lang)
  local syntax = LANG[lang]
  if syntax == nil then syntax = lang end
  return syntax
end

local function plain_lines(text)
  local plain = {}
  for _, l in ipairs(lines_of(text)) do plain[#plain + 1] = esc(l) end
  return plain
end

local function want_highlight(text, lang)
  local syntax = syntax_of(lang)
  if syntax == "" or text == "" then return end
  local key = syntax .. "\0" .. text
  if hl_cache[key] == nil then hl_cache[key] = false; hl_pending[#hl_pending + 1] = { key, text, syntax } end
end

local function highlight_all()
  if #hl_pending == 0 then return end
  local blocks = {}
  for i, p in ipairs(hl_pending) do
    blocks[i] = pandoc.CodeBlock(p[2], { id = "w" .. i, class = p[3] })
  end
  local t0 = os.clock()
  local html = pandoc.write(pandoc.Pandoc(blocks), "html5")
  local t1 = os.clock()
  for i, code in html:gmatch('<div class="sourceCode" id="w(%d+)"><pre[^>]*><code[^>]*>(.-)</code></pre></div>') do
    local p = hl_pending[tonumber(i)]
    local out, ok, prefix = {}, true, '<span id="w' .. i .. '%-%d+"><a href="#w' .. i .. '%-%d+" aria%-hidden="true" tabindex="%-1"></a>'
    for l in (code .. "\n"):gmatch("(.-)\n") do
      local body = l:match("^" .. prefix .. "(.*)</span>$")
      if not body then ok = false; break end
      out[#out + 1] = body
    end
    if ok and #out == #lines_of(p[2]) then hl_cache[p[1]] = out end
  end
  if os.getenv("WEAVE_TIMES") then
    io.stderr:write(string.format("highlight: write %.2fs, split %.2fs\n", t1 - t0, os.clock() - t1))
  end
  hl_pending = {}
end

local function highlight_lines(text, lang)
  local cached = hl_cache[syntax_of(lang) .. "\0" .. text]
  if cached then
    local copy = {}
    for i, l in ipairs(cached) do copy[i] = l end
    return copy
  end
  return plain_lines(text)
end

-- A block's code, with each <<reference>> line turned into a link to the
-- fragment it names.
local function render_block_code(b, depth)
  local raw = lines_of(b.body)
  local hl = highlight_lines(b.body, b.lang)
  for i, l in ipairs(raw) do
    local indent, ref = l:match("^(%s*)<<([^%s<>]+)>>%s*$")
    local f = ref and fragments[ref]
    if f then
      hl[i] = esc(indent) .. '<a class="ref" href="' .. up(depth) .. (f.note == b.note and "" or f.note.page)
        .. "#" .. f.anchor .. '">&#x27E8;' .. esc(ref) .. "&#x27E9;</a>"
    end
  end
  return '<pre class="code"><code>' .. table.concat(hl, "\n") .. "</code></pre>"
end

local function block_href(b, depth)
  return up(depth) .. b.note.page .. "#" .. b.anchor
end

-- The caption above a block: what it is (file, fragment, diagram) and where
-- it goes; below a fragment, where it is used.
local function render_block(b)
  local head = {}
  if b.name then
    head[#head + 1] = '<span class="kind">fragment</span> <a class="name" href="#' .. b.anchor .. '">&#x27E8;'
      .. esc(b.name) .. "&#x27E9;</a>"
  end
  if b.tangle then
    local file = b.tangle
    if files[file] and b.lands and b.lands[file] and not file:match("^diagrams/") then
      head[#head + 1] = '<span class="kind">' .. (file:match("^tests/") and "test" or "file")
        .. '</span> <a class="file" href="' .. file .. ".html#L" .. b.lands[file] .. '">' .. esc(file) .. "</a>"
    else
      head[#head + 1] = '<span class="kind">file</span> <span class="file">' .. esc(file) .. "</span>"
    end
  end
  if b.name and not b.tangle and b.lands then
    -- Where the fragment's lines end up once expanded.
    for _, file in ipairs(sorted_keys(b.lands)) do
      if not file:match("^diagrams/") then
        head[#head + 1] = '<span class="kind">in</span> <a class="file" href="' .. file .. ".html#L" .. b.lands[file]
          .. '">' .. esc(file) .. "</a>"
      end
    end
  end
  if #head == 0 then
    head[#head + 1] = '<span class="kind">' .. esc(b.lang ~= "" and b.lang or "text") .. "</span>"
  end
  head[#head + 1] = '<a class="here" href="#' .. b.anchor .. '" title="' .. esc(b.label) .. '">&#xB6;</a>'
  local foot = ""
  if b.name then
    local users = used_by[b.name] or {}
    local items = {}
    for _, u in ipairs(users) do
      local what = u.name and ("&#x27E8;" .. esc(u.name) .. "&#x27E9;") or (esc(u.tangle or u.label))
      local where = u.note ~= b.note and (" in " .. esc(u.note.title)) or ""
      items[#items + 1] = '<a href="' .. (u.note == b.note and "" or u.note.page) .. "#" .. u.anchor .. '">'
        .. what .. "</a>" .. where
    end
    foot = '<div class="block-foot">Defined here, in ' .. esc(b.label) .. "; "
      .. (#items > 0 and ("used in " .. table.concat(items, ", ") .. ".") or "used by no block.")
      .. "</div>"
  end
  local refs = sorted_keys(b.refs or {})
  if #refs > 0 then
    local items = {}
    for _, r in ipairs(refs) do
      local f = fragments[r]
      local where = f.note == b.note and esc(f.label) or (esc(f.note.title) .. " &#x203A; " .. esc(f.label))
      items[#items + 1] = '<a href="' .. (f.note == b.note and "" or f.note.page) .. "#" .. f.anchor
        .. '">&#x27E8;' .. esc(r) .. "&#x27E9;</a> (defined in " .. where .. ")"
    end
    foot = foot .. '<div class="block-foot">Uses ' .. table.concat(items, ", ") .. ".</div>"
  end
  local body = render_block_code(b, 0)
  if b.lang == "mermaid" then
    return '<details class="block mermaid" id="' .. b.anchor .. '"><summary>' .. table.concat(head, " ")
      .. " <span class=\"hint\">(mermaid source)</span></summary>" .. body .. "</details>"
  end
  return '<div class="block" id="' .. b.anchor .. '"><div class="block-head">' .. table.concat(head, " ")
    .. "</div>" .. body .. foot .. "</div>"
end

-- ---------------------------------------------------------------------------
-- Pages

local function read_asset(name) return assert(read_file(ASSETS .. "/" .. name), name) end

local function nav(current, depth)
  local items = {}
  for _, n in ipairs(notes) do
    local cls = (n == current) and ' class="current" aria-current="page"' or ""
    items[#items + 1] = '<li><a' .. cls .. ' href="' .. up(depth) .. n.page .. '">' .. esc(n.title) .. "</a></li>"
  end
  return table.concat(items, "\n")
end

local function page(t)
  local d = t.depth or 0
  return table.concat({
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>" .. esc(t.title) .. (t.title ~= SITE_NAME and (" &#x2014; " .. SITE_NAME) or "") .. "</title>",
    '<link rel="stylesheet" href="' .. up(d) .. 'style.css">',
    '<script defer src="' .. up(d) .. 'search.js"></script>',
    "</head>",
    '<body class="' .. (t.class or "note") .. '">',
    '<header class="top"><a class="site" href="' .. up(d) .. 'index.html">' .. SITE_NAME .. "</a>",
    '<form class="search" action="' .. up(d) .. 'search.html" method="get" role="search">'
      .. '<input type="search" name="q" placeholder="Search the notes" aria-label="Search the notes">'
      .. "</form></header>",
    '<div class="layout">',
    '<nav class="toc" aria-label="Notes"><h2>Notes</h2><ul>', nav(t.note, d), "</ul>",
    t.files or "", "</nav>",
    '<main id="content">', t.body, "</main>",
    "</div>",
    '<footer>Woven from the notes under <code>notes/</code>; edit a note, not this page.</footer>',
    "</body>",
    "</html>",
    "",
  }, "\n")
end

local search_entries = {}

-- The body of a note's page: pandoc's HTML, with links resolved, headings
-- given stable anchors and every source block replaced by its own rendering.
local function note_body(note)
  local hidx = 0
  local filter = {
    Header = function(h)
      hidx = hidx + 1
      local meta = note.headings[hidx]
      h.identifier = meta and meta.anchor or slugify(stringify(h.content))
      h.attributes = {}
      h.classes = {}
      -- Headings one level down: the page title is the only h1.
      h.level = math.min(h.level + 1, 6)
      table.insert(h.content, pandoc.RawInline("html", ' <a class="here" href="#' .. h.identifier .. '" aria-hidden="true">&#xA7;</a>'))
      return h
    end,
    CodeBlock = function(cb)
      local b = note.blocks[tonumber(cb.attributes["weave-line"] or -1)]
      if not b then return nil end
      return pandoc.RawBlock("html", render_block(b))
    end,
    Link = function(l)
      local href = resolve_target(note, l.target, 0)
      if href then l.target = href; return l end
      -- A note not written yet: say so, and offer no link that goes nowhere.
      if l.target:match("^id:") then
        return pandoc.Span(l.content, { class = "broken", title = "no note has this ID yet" })
      end
      return l
    end,
    Span = function(s)
      -- pandoc 2.17 reads [[*Heading]] as a span; make it the link it is.
      if s.classes:includes("spurious-link") and s.attributes.target then
        local href = resolve_target(note, s.attributes.target, 0)
        local content = pandoc.walk_inline(pandoc.Span(s.content), {
          Emph = function(e) return e.content end,
          Str = function(st) return pandoc.Str((st.text:gsub("^%*", ""))) end,
        }).content
        if href then return pandoc.Link(content, href) end
        return pandoc.Span(content, { class = "broken" })
      end
    end,
    Image = function(img)
      local svg = img.src:match("diagrams/([^/]+)%.svg$")
      if svg then
        -- The drawing's own size, so a small diagram is not blown up to the
        -- column's width (mermaid's SVG says width="100%").
        -- A diagram much wider than the column would shrink until its labels
        -- are unreadable; it keeps three quarters of its size and scrolls.
        local size, class = "", "diagram"
        local w, h = (read_file(ROOT .. "/diagrams/" .. svg .. ".svg") or ""):match('viewBox="[-%d.]+ [-%d.]+ ([%d.]+) ([%d.]+)"')
        if w then
          w, h = math.ceil(tonumber(w)), math.ceil(tonumber(h))
          size = string.format(' width="%d" height="%d"', w, h)
          if w > 1000 and w > 2 * h then
            class = "diagram wide"
            size = size .. string.format(' style="min-width: %dpx"', math.floor(w * 0.75))
          end
        end
        return pandoc.RawInline("html", '<a class="' .. class .. '" href="diagrams/' .. svg .. '.svg"><img src="diagrams/'
          .. svg .. '.svg" alt="Diagram: ' .. esc(svg) .. '"' .. size .. '></a>')
      end
    end,
  }
  -- Link before Span: a resolved link is no longer an Org target.
  local doc = pandoc.Pandoc(note.doc.blocks, note.doc.meta)
  doc = doc:walk({ Header = filter.Header, CodeBlock = filter.CodeBlock, Image = filter.Image })
  doc = doc:walk({ Link = filter.Link, Span = filter.Span })

  -- Search entries: one per section, its words without markup.
  local section = { anchor = "", heading = "", text = {} }
  local function flush()
    local text = table.concat(section.text, " "):gsub("%s+", " ")
    if text ~= "" or section.heading ~= "" then
      search_entries[#search_entries + 1] = { note.page .. (section.anchor ~= "" and ("#" .. section.anchor) or ""),
        note.title, section.heading, text }
    end
  end
  local hidx = 0
  for _, blk in ipairs(note.doc.blocks) do
    if blk.t == "Header" then
      flush()
      hidx = hidx + 1
      local h = note.headings[hidx]
      section = { anchor = h and h.anchor or "", heading = stringify(blk.content), text = {} }
    elseif blk.t == "CodeBlock" then
      table.insert(section.text, blk.text)
    else
      table.insert(section.text, stringify(blk))
    end
  end
  flush()

  local html = pandoc.write(doc, "html5")
  return html
end

local function files_nav(note, depth)
  local list, seen = {}, {}
  for _, b in ipairs(note.blocks) do
    if b.tangle and not seen[b.tangle] and files[b.tangle] and not b.tangle:match("^diagrams/") then
      seen[b.tangle] = true
      list[#list + 1] = b.tangle
    end
  end
  table.sort(list)
  if #list == 0 then return "" end
  local items = {}
  for _, f in ipairs(list) do
    items[#items + 1] = '<li><a href="' .. up(depth) .. f .. '.html">' .. esc(f) .. "</a></li>"
  end
  return '<h2>Files of this note</h2><ul class="files">' .. table.concat(items, "\n") .. "</ul>"
end

local function backlinks_html(note)
  local list = {}
  for _, v in pairs(backlinks[note] or {}) do list[#list + 1] = v end
  table.sort(list, function(a, b)
    if a.note.title ~= b.note.title then return a.note.title < b.note.title end
    return (a.heading or "") < (b.heading or "")
  end)
  local items = {}
  for _, v in ipairs(list) do
    local h = v.heading and (" &#x203A; " .. esc(v.heading)) or ""
    local anchor = v.anchor ~= "" and ("#" .. v.anchor) or ""
    items[#items + 1] = '<li><a href="' .. v.note.page .. anchor .. '">' .. esc(v.note.title) .. h .. "</a></li>"
  end
  if #items == 0 then
    return '<section class="backlinks"><h2>Linked from</h2><p>No other note links here.</p></section>'
  end
  return '<section class="backlinks"><h2>Linked from</h2><ul>' .. table.concat(items, "\n") .. "</ul></section>"
end


-- Highlight every block and every tangled file in one pandoc call.
for _, note in ipairs(notes) do
  for _, b in ipairs(note.blocks) do want_highlight(b.body, b.lang) end
end
highlight_all()

-- A tangled line in colour: the coloured line of the block it came from,
-- behind whatever prefix a <<reference>> put in front of it.  A link comment
-- is a comment; a line that matches nothing (an Org escape) stays plain.
local function tangled_line_html(line, b, nline)
  if nline == b.first or (b.last and nline == b.last) then
    return '<span class="co">' .. esc(line) .. "</span>"
  end
  local idx = nline - b.first
  b.raw_lines = b.raw_lines or lines_of(b.body)
  b.hl_lines = b.hl_lines or highlight_lines(b.body, b.lang)
  local bl = b.raw_lines[idx]
  if not bl then return esc(line) end
  local hl = b.hl_lines[idx]
  if line == bl then return hl end
  local trimmed = bl:match("^%s*(.-)$")
  if trimmed ~= "" and #line >= #trimmed and line:sub(-#trimmed) == trimmed then
    return esc(line:sub(1, #line - #trimmed)) .. (hl:gsub("^%s+", ""))
  end
  return esc(line)
end

-- The note's own outline: its top-level headings, for long notes.
local function outline_nav(note)
  local items = {}
  for _, h in ipairs(note.headings) do
    if h.level == 1 then
      local title = stringify(pandoc.read(h.title, "org").blocks)
      items[#items + 1] = '<li><a href="#' .. h.anchor .. '">' .. esc(title) .. "</a></li>"
    end
  end
  if #items < 2 then return "" end
  return '<h2>On this page</h2><ul class="outline">' .. table.concat(items, "\n") .. "</ul>"
end

for _, note in ipairs(notes) do
  local body = '<article><h1 class="title">' .. esc(note.title) .. "</h1>\n"
    .. '<p class="source-note">Source: <code>' .. esc(note.path) .. "</code></p>\n"
    .. note_body(note) .. "\n</article>\n" .. backlinks_html(note)
  write_out(note.page, page({ title = note.title, body = body, note = note,
    files = outline_nav(note) .. files_nav(note, 0) }))
end

-- ---------------------------------------------------------------------------
-- Source pages: one per tangled file, each run of lines linked to its block


for _, file in ipairs(sorted_keys(files)) do
  local text = read_file(ROOT .. "/" .. file)
  if text and not file:match("^diagrams/") then
    local depth = select(2, file:gsub("/", ""))
    local map = files[file]
    local raw = lines_of(text)
    local chunks, cur = {}, nil
    for i = 1, #raw do
      local m = map[i]
      local b = m and block_at(m[1], m[2])
      if not cur or (b and b ~= cur.block) then
        cur = { block = b, lines = {}, first = i }
        chunks[#chunks + 1] = cur
      end
      local html = b and tangled_line_html(raw[i], b, m[2]) or esc(raw[i])
      cur.lines[#cur.lines + 1] = '<span class="line" id="L' .. i .. '"><a class="ln" href="#L' .. i .. '">'
        .. i .. "</a>" .. html .. "</span>"
    end
    local parts, notes_of = {}, {}
    for _, c in ipairs(chunks) do
      local head
      if c.block then
        local b = c.block
        notes_of[b.note] = true
        head = '<a href="' .. block_href(b, depth) .. '">' .. esc(b.note.path) .. " &#x203A; "
          .. (b.name and ("&#x27E8;" .. esc(b.name) .. "&#x27E9;") or esc(b.label)) .. "</a>"
      else
        head = "<span>(no block)</span>"
      end
      parts[#parts + 1] = '<section class="chunk"><div class="chunk-head">' .. head .. "</div>"
        .. '<pre class="code numbered"><code>' .. table.concat(c.lines, "\n") .. "</code></pre></section>"
    end
    local origin = {}
    for _, n in ipairs(notes) do
      if notes_of[n] then origin[#origin + 1] = '<a href="' .. up(depth) .. n.page .. '">' .. esc(n.path) .. "</a>" end
    end
    local body = '<h1 class="title"><code>' .. esc(file) .. "</code></h1>\n"
      .. '<p class="source-note">Tangled from ' .. table.concat(origin, ", ")
      .. "; edit the note, not this file.  Each part below links to the block it comes from.</p>\n"
      .. table.concat(parts, "\n")
    local owner = nil
    for _, n in ipairs(notes) do if notes_of[n] then owner = owner or n end end
    write_out(file .. ".html", page({ title = file, body = body, depth = depth, class = "source", note = owner,
      files = owner and files_nav(owner, depth) or "" }))
  end
end

-- ---------------------------------------------------------------------------
-- Search page, index, assets, diagrams

write_out("search.html", page({
  title = "Search",
  class = "search-page",
  body = '<h1 class="title">Search</h1>\n'
    .. '<form class="search big" action="search.html" method="get" role="search">'
    .. '<input id="q" type="search" name="q" placeholder="a word from the notes" aria-label="Search the notes">'
    .. ' <button type="submit">Search</button></form>\n'
    .. '<p id="search-status"><noscript>Searching needs JavaScript; every note is listed on the left.</noscript></p>\n'
    .. '<ol id="results"></ol>\n',
}))

-- The index: [url, note title, heading, text] per section, as JSON.
local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
    else return string.format("\\u%04x", c:byte()) end
  end)
  return '"' .. s .. '"'
end
local rows = {}
for _, e in ipairs(search_entries) do
  local cells = {}
  for i, v in ipairs(e) do cells[i] = json_string(v) end
  rows[#rows + 1] = "[" .. table.concat(cells, ",") .. "]"
end
write_out("search-index.json", "[\n" .. table.concat(rows, ",\n") .. "\n]\n")

write_out("style.css", read_asset("style.css"))
write_out("search.js", read_asset("search.js"))

local ls = io.popen("cd '" .. ROOT .. "' && ls diagrams/*.svg 2>/dev/null")
for svg in ls:lines() do write_out(svg, read_file(ROOT .. "/" .. svg)) end
ls:close()

-- Files the site no longer has (a note removed, a file renamed) go away.
local removed = 0
local find = io.popen("cd '" .. OUT .. "' && find . -type f \\( -name '*.html' -o -name '*.svg' -o -name '*.json' \\) | sort")
for f in find:lines() do
  local rel = f:gsub("^%./", "")
  if not produced[rel] then os.remove(OUT .. "/" .. rel); removed = removed + 1 end
end
find:close()

io.stderr:write(string.format("  %-8s %d notes, %d files: %d written, %d unchanged, %d removed\n",
  "SITE", #notes, #sorted_keys(files), written, kept, removed))
