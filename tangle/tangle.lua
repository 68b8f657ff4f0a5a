-- tangle/tangle.lua: caracal's tangler, run by tangle/tangle as a pandoc Lua filter.
--
-- It turns the source blocks of the Org notes into src/, tests/ and diagrams/
-- with the same bytes Emacs' org-babel-tangle (Org 9.5, `emacs -Q`) writes,
-- and is strict where Org is silent.  notes/literate-programming.org explains
-- the rules, the deviations and why the work is split as it is:
--
--   * a line scanner finds every block, heading and keyword with its line
--     number and verbatim text (pandoc's org reader keeps no positions and
--     rewrites code text: it strips one comma too few from ",,*" lines and
--     loses a block's language behind a "-i" switch);
--   * pandoc parses each note, after the scanner has tagged every #+begin_src
--     line with its line number, and supplies the document structure: which
--     blocks and headings exist, in what order, and the headings' property
--     drawers and the #+PROPERTY lines the header arguments inherit from;
--   * the two views are cross-checked, so a block pandoc did not see is an
--     error rather than a silent drop;
--   * header arguments are merged and noweb references expanded as Org does,
--     the files are assembled, checked (targets, owners, orphans), and only
--     then written, only where their content changed.
--
-- Settings come from the environment (tangle/tangle sets them):
--   CARACAL_ROOT       the repository (absolute)
--   CARACAL_NOTES      the notes to tangle, relative to the root, space separated
--   CARACAL_OUT        where the tree is written (default: the root)
--   CARACAL_SOURCEMAP  where the source map is written (optional)
--   CARACAL_MODE       "write" (default) or "check": report drift, write nothing
--   CARACAL_OWNED      folders whose every file must come from a note (orphan check)
--   CARACAL_ORPHANS    "0" when only some notes are tangled: no orphan check

local ROOT = assert(os.getenv('CARACAL_ROOT'), 'CARACAL_ROOT is not set')
local OUT = os.getenv('CARACAL_OUT') or ROOT
local MODE = os.getenv('CARACAL_MODE') or 'write'
local SOURCEMAP = os.getenv('CARACAL_SOURCEMAP')
if SOURCEMAP == '' then SOURCEMAP = nil end
local OWNED = os.getenv('CARACAL_OWNED') or 'src tests diagrams:mmd'

local errors = {}
local seen_errors = {}
-- Records an error once; a nil place means "parse quietly" (already checked).
local function report(place, message)
  if not place then return end
  local text = place .. ': ' .. message
  if seen_errors[text] then return end
  seen_errors[text] = true
  errors[#errors + 1] = text
end

---------------------------------------------------------------------------
-- Small string and path helpers

local function split_lines(text)
  local lines = {}
  for line in (text .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = line end
  if text:sub(-1) == '\n' then lines[#lines] = nil end
  return lines
end

local function trim(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end

local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local data = f:read('a')
  f:close()
  return data
end

-- Collapse "a/./b/../c" to "a/c"; returns nil when ".." climbs above the start.
local function normalize_path(path)
  local absolute = path:sub(1, 1) == '/'
  local parts = {}
  for part in path:gmatch('[^/]+') do
    if part == '..' then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif part ~= '.' then
      parts[#parts + 1] = part
    end
  end
  return (absolute and '/' or '') .. table.concat(parts, '/')
end

local function dirname(path)
  return path:match('^(.*)/[^/]*$') or '.'
end

-- The path of `target` relative to the folder `from` (both relative to the root).
local function relative_path(target, from)
  local t, f = {}, {}
  for p in target:gmatch('[^/]+') do t[#t + 1] = p end
  for p in from:gmatch('[^/]+') do if p ~= '.' then f[#f + 1] = p end end
  local common = 0
  while common < #f and common < #t and f[common + 1] == t[common + 1] do
    common = common + 1
  end
  local out = {}
  for _ = common + 1, #f do out[#out + 1] = '..' end
  for i = common + 1, #t do out[#out + 1] = t[i] end
  return table.concat(out, '/')
end

---------------------------------------------------------------------------
-- Header arguments, parsed as org-babel-parse-header-arguments does

-- Split "a :b c :d \"e :f\"" at every ':' that follows a blank, outside
-- quotes and parentheses (org-babel-balanced-split).
local function balanced_split(s)
  local pieces, depth, quoted, start = {}, 0, false, 1
  local i = 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == '"' and s:sub(i - 1, i - 1) ~= '\\' then quoted = not quoted
    elseif not quoted and (c == '(' or c == '[') then depth = depth + 1
    elseif not quoted and (c == ')' or c == ']') then depth = math.max(0, depth - 1)
    elseif not quoted and depth == 0 and c == ':' and (i == 1 or s:sub(i - 1, i - 1):match('[ \t]')) then
      pieces[#pieces + 1] = s:sub(start, i - 1)
      start = i + 1
    end
    i = i + 1
  end
  pieces[#pieces + 1] = s:sub(start)
  return pieces
end

local lisp_escapes = { n = '\n', t = '\t', ['\\'] = '\\', ['"'] = '"', e = '\27', s = ' ' }

-- A header value as org-babel-read sees it: a lone string literal loses its
-- quotes and escapes; Lisp forms are refused (tangling never evaluates code).
local function read_value(raw, place)
  local value = trim(raw)
  local first = value:sub(1, 1)
  if first == '(' or first == "'" or first == '`' then
    report(place, 'header value ' .. value .. ' is Emacs Lisp; the tangler does not evaluate code')
    return value
  end
  local inner = value:match('^"(.*)"$')
  if inner and not inner:find('[^\\]"') and not inner:find('^"') then
    return (inner:gsub('\\(.)', function(c) return lisp_escapes[c] or c end))
  end
  return value
end

-- Parse one header-argument string into an ordered list of {key, value}.
local function parse_header_args(s, place, into)
  into = into or {}
  if not s or not s:find('%S') then return into end
  local pieces = balanced_split(s)
  for i = 2, #pieces do
    local piece = pieces[i]
    local key, rest = piece:match('^(%S+)[ \t\f\r\v]+(%S.*)$')
    if key then
      into[#into + 1] = { ':' .. key, read_value(rest, place) }
    elseif piece:find('%S') then
      into[#into + 1] = { ':' .. trim(piece), '' }
    end
  end
  if trim(pieces[1]) ~= '' then
    report(place, 'stray text before the first header argument: "' .. trim(pieces[1]) .. '"')
  end
  return into
end

-- Header arguments whose meaning the tangler implements; anything else that
-- would change the tangled bytes is refused rather than ignored.
local known_args = {
  [':tangle'] = true, [':mkdirp'] = true, [':comments'] = true, [':padline'] = true,
  [':shebang'] = true, [':noweb'] = true, [':noweb-ref'] = true, [':noweb-sep'] = true,
  [':no-expand'] = true, [':exports'] = true, [':results'] = true, [':eval'] = true,
  [':session'] = true, [':cache'] = true, [':hlines'] = true, [':main'] = true,
  [':flags'] = true, [':cmdline'] = true, [':dir'] = true, [':file'] = true,
  [':wrap'] = true, [':caracal-line'] = true, [':includes'] = true, [':libs'] = true,
  [':lang'] = true, [':colnames'] = true, [':rownames'] = true,
}
local refused_args = {
  [':var'] = 'variables are not expanded when tangling here',
  [':prologue'] = 'prologues are not supported',
  [':epilogue'] = 'epilogues are not supported',
  [':tangle-mode'] = 'file modes are set by :shebang only',
}

local function check_args(args, place)
  for _, kv in ipairs(args) do
    local key = kv[1]
    if refused_args[key] then
      report(place, 'header argument ' .. key .. ': ' .. refused_args[key])
    elseif not known_args[key] then
      report(place, 'unknown header argument ' .. key)
    end
  end
end

---------------------------------------------------------------------------
-- The scanner: every block, heading and keyword with its line number

local lesser_blocks = { src = true, example = true, export = true, comment = true, verse = true }

-- A heading is stars followed by a space (Org's outline regexp "\\*+ "); a tab
-- or nothing after the stars makes an ordinary line.
local function heading_of(line)
  local stars, rest = line:match('^(%*+) (.*)$')
  if not stars then return nil end
  return #stars, rest
end

-- Org's view of a heading title: the raw value (no TODO keyword, priority or
-- tags) and whether it is commented or archived.
local function parse_heading(level, rest)
  local h = { level = level, commented = false, archived = false }
  local text = rest
  local kw, after = text:match('^(%u+)[ \t]+(.*)$')
  if kw == 'TODO' or kw == 'DONE' then text = after end
  if text:match('^TODO$') or text:match('^DONE$') then text = '' end
  local prio_rest = text:match('^%[#.%][ \t]*(.*)$')
  if prio_rest then text = prio_rest end
  local com_rest = text:match('^COMMENT[ \t]+(.*)$') or (text == 'COMMENT' and '')
  if com_rest then h.commented = true; text = com_rest end
  local title, tags = text:match('^(.-)[ \t]+(:[%w_@#%%:]+:)[ \t]*$')
  if not title then title = text end
  if tags and tags:find(':ARCHIVE:', 1, true) then h.archived = true end
  h.title = trim(title)
  return h
end

local read_src_block

-- What pandoc is shown of a line outside blocks.  Tangling depends on the
-- outline (headings, drawers, keywords, block delimiters, list structure),
-- never on the words of a paragraph, and parsing those words was two thirds
-- of pandoc's time; so prose is handed over as blank lines (keeping every
-- line number) and a list item as its bullet alone.
local function structural_line(line)
  if line:match('^[ \t]*[*#:|]') then return line end
  local bullet = line:match('^([ \t]*[-+][ \t])') or line:match('^([ \t]*%d+[.)][ \t])')
  if bullet then return bullet .. 'item' end
  return ''
end

local function scan(note, text)
  local lines = split_lines(text)
  local s = { note = note, lines = lines, headings = {}, blocks = {} }
  local out = {}
  local heading = nil            -- the heading the scanner is under
  local skip_until = nil         -- end line pattern of a non-src lesser block
  local i = 1
  while i <= #lines do
    local line = lines[i]
    out[i] = structural_line(line)
    if skip_until then
      if line:lower():match(skip_until) then skip_until = nil end
    else
      local level, rest = heading_of(line)
      if level then
        local h = parse_heading(level, rest)
        h.line = i
        h.parent = heading
        while h.parent and h.parent.level >= level do h.parent = h.parent.parent end
        s.headings[#s.headings + 1] = h
        heading = h
      else
        local indent, kind, tail = line:match('^([ \t]*)#%+[Bb][Ee][Gg][Ii][Nn]_(%S+)(.*)$')
        kind = kind and kind:lower()
        if kind == 'src' then
          i = read_src_block(s, i, indent, tail, heading, out)
        elseif kind and lesser_blocks[kind] then
          skip_until = '^[ \t]*#%+end_' .. kind:gsub('%p', '%%%0') .. '[ \t]*$'
        end
      end
    end
    i = i + 1
  end
  s.preprocessed = table.concat(out, '\n') .. '\n'
  return s
end

-- The affiliated keywords just above a block: its #+NAME and #+HEADER lines.
local function affiliated_keywords(lines, begin)
  local name, headers = nil, {}
  local j = begin - 1
  while j >= 1 do
    local l = lines[j]
    local key, value = l:match('^[ \t]*#%+([%w_]+):[ \t]*(.-)[ \t]*$')
    if not key then break end
    key = key:upper()
    if key == 'NAME' then
      name = name or value
    elseif key == 'HEADER' or key == 'HEADERS' then
      table.insert(headers, 1, { line = j, text = value })
    elseif not (key == 'CAPTION' or key:match('^ATTR_') or key == 'RESULTS') then
      break
    end
    j = j - 1
  end
  return name, headers
end

local function find_block_end(lines, begin)
  for j = begin + 1, #lines do
    if lines[j]:match('^[ \t]*#%+[Ee][Nn][Dd]_[Ss][Rr][Cc][ \t]*$') then return j end
    if heading_of(lines[j]) then return nil, j end
  end
  return nil
end

read_src_block = function(s, i, indent, tail, heading, out)
  local place = s.note .. ':' .. i
  local lang, rest = tail:match('^[ \t]+(%S+)(.*)$')
  local last, stray_heading = find_block_end(s.lines, i)
  if not last then
    if stray_heading then
      report(s.note .. ':' .. stray_heading, 'a line starting with "*" inside a source block ends it; escape it as ",*"')
    else
      report(place, 'source block has no #+end_src')
    end
    return #s.lines
  end
  if not lang then
    report(place, 'source block has no language')
    return last
  end
  local switches, args = (rest or ''):match('^([^:]*)(.*)$')
  -- -i changes what is tangled and is honoured; -n/+n only number exported
  -- lines.  Others (-r, -l, -k: coderefs) would change the bytes: refused.
  for switch in switches:gmatch('%S+') do
    if not (switch == '-i' or switch:match('^[-+]n%d*$')) then
      report(place, 'source block switch ' .. switch .. ' is not supported (only -i, -n, +n)')
    end
  end
  local name, headers = affiliated_keywords(s.lines, i)
  local block = {
    line = i, last = last, lang = lang, switches = trim(switches), args = args,
    name = name, headers = headers, heading = heading, place = place,
    contents = { table.unpack(s.lines, i + 1, last - 1) },
  }
  s.blocks[#s.blocks + 1] = block
  out[i] = indent .. '#+begin_src ' .. lang .. ' :caracal-line ' .. i
  for _, h in ipairs(headers) do out[h.line] = '# (header line folded into the block at line ' .. i .. ')' end
  -- pandoc needs to see the block, not its body (taken from the lines):
  -- an empty body keeps the line count and spares pandoc the parsing.
  for j = i + 1, last - 1 do out[j] = '' end
  out[last] = s.lines[last]
  return last
end

---------------------------------------------------------------------------
-- pandoc's view: headings with their property drawers, #+PROPERTY lines, and
-- the line numbers of the source blocks it saw

local function read_with_pandoc(s)
  local doc = pandoc.read(s.preprocessed, 'org')
  local view = { headers = {}, seen = {}, file_properties = {} }
  local function walk(blocks)
    for _, b in ipairs(blocks) do
      if b.t == 'Header' then
        local props = {}
        for _, kv in ipairs(b.attributes) do props[#props + 1] = { kv[1], kv[2] } end
        view.headers[#view.headers + 1] = { level = b.level, properties = props }
      elseif b.t == 'CodeBlock' then
        local line = tonumber(b.attributes['caracal-line'])
        if line then view.seen[line] = true end
      elseif b.t == 'RawBlock' and b.format == 'org' then
        for raw in (b.text .. '\n'):gmatch('(.-)\n') do
          local value = raw:match('^[ \t]*#%+[Pp][Rr][Oo][Pp][Ee][Rr][Tt][Yy]:[ \t]*(.-)[ \t]*$')
          if value then view.file_properties[#view.file_properties + 1] = value end
        end
      elseif b.t == 'BulletList' or b.t == 'OrderedList' then
        for _, item in ipairs(b.content) do walk(item) end
      elseif b.t == 'DefinitionList' then
        for _, item in ipairs(b.content) do
          for _, def in ipairs(item[2]) do walk(def) end
        end
      elseif b.t == 'BlockQuote' or b.t == 'Div' then
        walk(b.content)
      end
    end
  end
  walk(doc.blocks)
  return view
end

-- pandoc splits a drawer key such as "header-args:cpp+" at its first colon:
-- the key arrives as "header-args" and the value as "cpp+: :tangle x".
local function header_args_property(key, value)
  local base, plus = key:match('^(header%-args)(%+?)$')
  if not base then return nil end
  local lang, lplus, rest = value:match('^([^%s:+]+)(%+?):[ \t]+(.*)$')
  if not lang then lang, lplus, rest = value:match('^([^%s:+]+)(%+?):()$') end
  if lang and plus == '' then
    return 'header-args:' .. lang, lplus == '+', type(rest) == 'string' and rest or ''
  end
  return 'header-args', plus == '+', value
end

-- Attach pandoc's property drawers to the scanner's headings, checking that
-- both saw the same outline (pandoc drops commented subtrees entirely).
local function attach_properties(s, view)
  -- pandoc drops a COMMENT heading and everything under it.
  local kept = {}
  for _, h in ipairs(s.headings) do
    local p, dropped = h, false
    while p do if p.commented then dropped = true end; p = p.parent end
    if not dropped then kept[#kept + 1] = h end
  end
  if #kept ~= #view.headers then
    local k = 1
    while kept[k] and view.headers[k] and kept[k].level == view.headers[k].level do k = k + 1 end
    local where = kept[k] and (s.note .. ':' .. kept[k].line) or s.note
    report(where, 'pandoc saw ' .. #view.headers .. ' headings where the scanner saw ' .. #kept ..
      '; the outlines part here')
    return
  end
  for k, h in ipairs(kept) do
    local ph = view.headers[k]
    if ph.level ~= h.level then
      report(s.note .. ':' .. h.line, 'pandoc read this heading at level ' .. ph.level)
    end
    h.properties = {}
    for _, kv in ipairs(ph.properties) do
      local name, plus, value = header_args_property(kv[1], kv[2])
      if name then
        h.properties[#h.properties + 1] = { name = name, plus = plus, value = value }
        -- Checked once, at the heading that sets it, not at every block inheriting it.
        check_args(parse_header_args(value, s.note .. ':' .. h.line), s.note .. ':' .. h.line)
      end
    end
  end
end

-- Org's file-wide #+PROPERTY values: "header-args" and "header-args:LANG",
-- with "+" variants appending.
local function file_properties(view)
  local props = {}
  for _, line in ipairs(view.file_properties) do
    local key, value = line:match('^(%S+)[ \t]*(.*)$')
    if key then
      local base, plus = key:match('^(.-)(%+?)$')
      if plus == '+' then
        props[base] = (props[base] and (props[base] .. ' ') or '') .. value
      else
        props[base] = value
      end
    end
  end
  return props
end

-- org-entry-get with inheritance: the innermost heading that sets PROPERTY
-- wins, "PROPERTY+" values met on the way out are appended to it.
local function inherited_property(heading, file_props, property)
  local appended = {}
  local h = heading
  while h do
    local base, plus_values = nil, {}
    for _, p in ipairs(h.properties or {}) do
      if p.name == property then
        if p.plus then plus_values[#plus_values + 1] = p.value else base = p.value; plus_values = {} end
      end
    end
    if base then
      local parts = { base }
      for _, v in ipairs(plus_values) do parts[#parts + 1] = v end
      for _, v in ipairs(appended) do parts[#parts + 1] = v end
      return table.concat(parts, ' ')
    end
    for k = #plus_values, 1, -1 do table.insert(appended, 1, plus_values[k]) end
    h = h.parent
  end
  local parts = {}
  if file_props[property] then parts[1] = file_props[property] end
  for _, v in ipairs(appended) do parts[#parts + 1] = v end
  if #parts == 0 then return nil end
  return table.concat(parts, ' ')
end

---------------------------------------------------------------------------
-- Blocks: parameters and normalized bodies

local defaults = {
  { ':session', 'none' }, { ':results', 'replace' }, { ':exports', 'code' },
  { ':cache', 'no' }, { ':noweb', 'no' }, { ':hlines', 'no' }, { ':tangle', 'no' },
}

local function merge_params(lists)
  local params = {}
  for _, list in ipairs(lists) do
    for _, kv in ipairs(list) do params[kv[1]] = kv[2] end
  end
  return params
end

local function block_params(s, block, file_props)
  local place = block.place
  local lists = { defaults }
  -- Inherited values were checked where they are written (attach_properties,
  -- check_file_properties); reading them again here reports nothing.
  local function from_property(name)
    local value = inherited_property(block.heading, file_props, name)
    lists[#lists + 1] = parse_header_args(value, nil)
  end
  from_property('header-args')
  from_property('header-args:' .. block.lang)
  local own = parse_header_args(block.args, place)
  for _, h in ipairs(block.headers) do parse_header_args(h.text, s.note .. ':' .. h.line, own) end
  check_args(own, place)
  lists[#lists + 1] = own
  return merge_params(lists)
end

-- org-unescape-code-in-string: drop the last comma of a leading run before * or #+.
local function unescape_line(line)
  local lead, commas, rest = line:match('^([ \t]*)(,+)(.*)$')
  if lead and (rest:sub(1, 1) == '*' or rest:sub(1, 2) == '#+') then
    return lead .. commas:sub(2) .. rest
  end
  return line
end

local function indentation_width(line)
  local col = 0
  for c in line:gmatch('.') do
    if c == ' ' then col = col + 1
    elseif c == '\t' then col = col + 8 - col % 8
    else break end
  end
  return col
end

-- org-do-remove-indentation: remove the common indentation, or nothing at
-- all when a line sits at column 0 or a line is indented less than the rest.
local function remove_indentation(lines)
  local n = math.huge
  for _, l in ipairs(lines) do
    if l.text:find('%S') then
      local ind = indentation_width(l.text)
      if ind == 0 then return lines end
      n = math.min(n, ind)
    end
  end
  if n == math.huge then return lines end
  local out = {}
  for k, l in ipairs(lines) do
    if not l.text:find('%S') then
      out[k] = { text = '', origin = l.origin }
    else
      local lead, body = l.text:match('^([ \t]*)(.*)$')
      if lead:find('\t') then
        -- Columns count tabs to the next multiple of 8, as Emacs does; the
        -- remaining indentation is rewritten as spaces.
        out[k] = { text = string.rep(' ', indentation_width(lead) - n) .. body, origin = l.origin }
      else
        out[k] = { text = lead:sub(n + 1) .. body, origin = l.origin }
      end
    end
  end
  return out
end

-- The block's body as Org's get-src-block-info gives it: unescaped, the
-- final newline dropped, common indentation removed (unless -i).
local function normalized_body(s, block)
  local lines = {}
  for k, text in ipairs(block.contents) do
    lines[k] = { text = unescape_line(text), origin = block.line + k }
  end
  if block.switches:find('%-i%f[%A]') then return lines end
  return remove_indentation(lines)
end

---------------------------------------------------------------------------
-- Noweb references

local function noweb_allowed(params, context)
  local allowed = context == 'tangle'
      and { yes = true, tangle = true, ['no-export'] = true, ['strip-export'] = true }
      or { yes = true, ['no-export'] = true, ['strip-export'] = true, eval = true }
  for word in (params[':noweb'] or ''):gmatch('%S+') do
    if allowed[word] then return true end
  end
  return false
end

-- Find the next <<reference>> in `text` from `from`, as Org's regexp
-- <<\([^ \t\n]\(?:.*?[^ \t\n]\)?\)>> finds it: the leftmost start, the
-- shortest body that begins and ends with a non-blank.
local function next_reference(text, from)
  local p = from
  while true do
    local open = text:find('<<', p, true)
    if not open then return nil end
    local q = open + 2
    while true do
      local close = text:find('>>', q, true)
      if not close then break end
      local body = text:sub(open + 2, close - 1)
      if #body >= 1 and not body:sub(1, 1):match('[ \t]') and not body:sub(-1):match('[ \t]') then
        return open, close + 1, body
      end
      q = close + 1
    end
    p = open + 1
  end
end

local expand_noweb

-- The text a reference stands for: the block named so, else every block whose
-- :noweb-ref is the name, joined by their :noweb-sep.
local function resolve_reference(ctx, name, place, stack)
  local named = ctx.named[name]
  local parts
  if named then
    parts = { named }
  else
    parts = ctx.collections[name]
  end
  if not parts or #parts == 0 then
    report(place, 'unresolved noweb reference <<' .. name .. '>>')
    return {}
  end
  if name:find('%(.*%)') then
    report(place, 'noweb reference <<' .. name .. '>> asks to evaluate a block; the tangler never runs code')
    return {}
  end
  local result = {}
  for k, b in ipairs(parts) do
    local body
    if stack[b] then
      report(place, 'noweb reference cycle through <<' .. name .. '>> (' .. b.place .. ')')
      return {}
    end
    if noweb_allowed(b.params, 'eval') then
      stack[b] = true
      body = expand_noweb(ctx, b, b.body, stack)
      stack[b] = nil
    else
      body = b.body
    end
    if k > 1 then
      local sep = parts[k - 1].params[':noweb-sep'] or '\n'
      -- The separator joins the previous body's last line and this body's first.
      local sep_lines = split_lines(sep .. 'x')
      local last = result[#result]
      local origin = last and last.origin or b.line
      if #sep_lines == 1 then
        local first = table.remove(body, 1) or { text = '', origin = b.line }
        local joined = (last and last.text or '') .. sep .. first.text
        if last then result[#result] = { text = joined, origin = last.origin } else result[1] = { text = joined, origin = first.origin } end
      else
        if last then last = { text = last.text .. sep_lines[1], origin = last.origin }; result[#result] = last end
        for m = 2, #sep_lines - 1 do result[#result + 1] = { text = sep_lines[m], origin = origin } end
        local tail = sep_lines[#sep_lines]:sub(1, -2)
        local first = table.remove(body, 1) or { text = '', origin = b.line }
        result[#result + 1] = { text = tail .. first.text, origin = first.origin }
      end
      for _, l in ipairs(body) do result[#result + 1] = l end
    else
      for _, l in ipairs(body) do result[#result + 1] = l end
    end
  end
  return result
end

-- org-babel-expand-noweb-references on a list of lines: each reference is
-- replaced by its expansion, the text before it on the line repeated in
-- front of every expanded line after the first.
expand_noweb = function(ctx, block, lines, stack)
  local out = {}
  for _, l in ipairs(lines) do
    local text, pos = l.text, 1
    local pieces = nil
    local current = { text = '', origin = l.origin }
    local emitted = {}
    while true do
      local open, close, name = next_reference(text, pos)
      if not open then break end
      pieces = true
      local prefix = text:sub(pos, open - 1)
      local expansion = resolve_reference(ctx, name, ctx.note .. ':' .. l.origin, stack)
      if #expansion == 0 then
        current.text = current.text .. prefix
      else
        for k, e in ipairs(expansion) do
          if k == 1 then
            current.text = current.text .. prefix .. e.text
            if current.text == prefix .. e.text then current.origin = e.origin end
          else
            emitted[#emitted + 1] = current
            current = { text = prefix .. e.text, origin = e.origin }
          end
        end
      end
      pos = close + 1
    end
    if pieces then
      current.text = current.text .. text:sub(pos)
      for _, e in ipairs(emitted) do out[#out + 1] = e end
      out[#out + 1] = current
    else
      out[#out + 1] = l
    end
  end
  return out
end

---------------------------------------------------------------------------
-- Comments: Org's link lines and :comments org/both text

local comment_syntax = {
  cpp = '//', ['c++'] = '//', sh = '#', bash = '#', shell = '#', makefile = '#',
  python = '#', ruby = '#', conf = '#', lua = '--', sql = '--', ['emacs-lisp'] = ';;',
  elisp = ';;',
}

local function comment_lines(ctx, block, text, origin)
  local prefix = comment_syntax[block.lang]
  if not prefix then
    report(block.place, ':comments needs a comment syntax for language "' .. block.lang .. '"; use :comments no')
    prefix = '#'
  end
  local out = {}
  for _, line in ipairs(split_lines(text)) do
    if line:find('%S') then
      out[#out + 1] = { text = prefix .. ' ' .. line, origin = origin }
    else
      out[#out + 1] = { text = line, origin = origin }
    end
  end
  return out
end

-- org-link-escape: backslash-escape brackets (and backslashes before them).
local function link_escape(s)
  return (s:gsub('(\\*)([%[%]])', function(bs, br) return bs .. bs .. '\\' .. br end)
           :gsub('(\\+)$', function(bs) return bs .. bs end))
end

local function heading_search_string(h)
  local t = h.title:gsub('%[%d+%%%]', ''):gsub('%[%d+/%d+%]', '')
  local words = {}
  for w in t:gmatch('%S+') do words[#words + 1] = w end
  return '*' .. table.concat(words, ' ')
end

-- The [[file:...::*Heading][Heading:N]] pair Org writes around a block.
local function link_data(ctx, block, target)
  local from = dirname(ctx.note_dir .. '/' .. block.params[':tangle'])
  if block.params[':tangle'] == 'yes' or not block.params[':tangle']:find('/') then from = ctx.note_dir end
  local file = relative_path(ctx.note, normalize_path(from) or from)
  if block.name then
    return 'file:' .. file .. '::' .. link_escape(block.name), block.name
  end
  if not block.heading then
    report(block.place, 'a block tangled with link comments must sit under a heading (Org would link to its #+begin_src line)')
    return 'file:' .. file, 'No heading:' .. block.counter
  end
  return 'file:' .. file .. '::' .. link_escape(heading_search_string(block.heading)),
         block.heading.title .. ':' .. block.counter
end

-- The org text between the previous heading line or block and this block,
-- for :comments org and both (org-babel-tangle-single-block's `comment').
local function org_comment_text(ctx, block)
  local lines = ctx.scan.lines
  local start_line, start_col = 1, 1
  if block.heading then
    local stars = lines[block.heading.line]:match('^%*+ ') or ''
    start_line, start_col = block.heading.line, #stars + 1
  end
  local previous = ctx.previous_block[block]
  if previous and (previous.last > start_line) then
    start_line, start_col = previous.last, #lines[previous.last] + 1
  end
  local parts = { lines[start_line]:sub(start_col) }
  for j = start_line + 1, block.line - 1 do parts[#parts + 1] = lines[j] end
  local text = table.concat(parts, '\n') .. '\n'
  local tl = {}
  for k, t in ipairs(split_lines(text)) do tl[k] = { text = t } end
  local stripped = remove_indentation(tl)
  local out = {}
  for k, l in ipairs(stripped) do out[k] = l.text end
  return table.concat(out, '\n') .. (text:sub(-1) == '\n' and '\n' or '')
end

---------------------------------------------------------------------------
-- Tangling one note

local note_files = {}     -- target path -> { note, place, chunks }
local file_order = {}

local function org_trim(lines)
  local first, last = 1, #lines
  while first <= last and not lines[first].text:find('[^ \t\r]') do first = first + 1 end
  while last >= first and not lines[last].text:find('[^ \t\r]') do last = last - 1 end
  local out = {}
  for k = first, last do out[#out + 1] = { text = lines[k].text, origin = lines[k].origin } end
  if #out > 0 then
    out[1].text = out[1].text:gsub('^[ \t\r]+', '')
    out[#out].text = out[#out].text:gsub('[ \t\r]+$', '')
  end
  return out
end

local function owned_folders()
  local folders = {}
  for spec in OWNED:gmatch('%S+') do
    local folder, suffix = spec:match('^([^:]+):?(.*)$')
    folders[#folders + 1] = { folder = folder, suffix = suffix ~= '' and suffix or nil }
  end
  return folders
end

-- Whether a generated file may live at `path`: inside one of the owned folders
-- (with its suffix, if one is named), so that no note can overwrite the
-- tangler, another note or a git hook.  "none" lifts the rule (fixtures).
local function inside_owned_folders(path)
  if OWNED == 'none' then return true end
  for _, f in ipairs(owned_folders()) do
    if path:sub(1, #f.folder + 1) == f.folder .. '/' and
       (not f.suffix or path:sub(-#f.suffix - 1) == '.' .. f.suffix) then
      return true
    end
  end
  return false
end

local function owned_description()
  local names = {}
  for _, f in ipairs(owned_folders()) do names[#names + 1] = f.folder .. '/' .. (f.suffix and ('*.' .. f.suffix) or '') end
  return table.concat(names, ', ')
end

local tangle_extensions = { ['emacs-lisp'] = 'el', elisp = 'el' }  -- org-babel-tangle-lang-exts under emacs -Q

local function target_path(ctx, block)
  local tangle = block.params[':tangle']
  local path
  if tangle:match("^[(`']") then return nil end  -- a Lisp value, already reported
  if tangle == 'yes' then
    path = ctx.note:gsub('%.org$', '') .. '.' .. (tangle_extensions[block.lang] or block.lang)
  else
    if tangle:sub(1, 1) == '/' or tangle:sub(1, 1) == '~' then
      report(block.place, 'tangle target "' .. tangle .. '" is absolute; name a path inside the repository')
      return nil
    end
    path = normalize_path(ctx.note_dir .. '/' .. tangle)
  end
  if not path or path == '' or path:sub(1, 2) == '..' then
    report(block.place, 'tangle target "' .. tangle .. '" is outside the repository')
    return nil
  end
  if not inside_owned_folders(path) then
    report(block.place, 'tangle target "' .. path .. '" is not in ' .. owned_description() ..
      ', where generated files live')
    return nil
  end
  return path
end

local function tangle_note(note)
  local text = read_file(ROOT .. '/' .. note)
  if not text then report(note, 'cannot read the note'); return end
  local s = scan(note, text)
  local view = read_with_pandoc(s)
  attach_properties(s, view)
  local file_props = file_properties(view)
  for n, line in ipairs(s.lines) do
    local key, value = line:match('^[ \t]*#%+[Pp][Rr][Oo][Pp][Ee][Rr][Tt][Yy]:[ \t]*(header%-args%S*)[ \t]*(.*)$')
    if key then check_args(parse_header_args(value, s.note .. ':' .. n), s.note .. ':' .. n) end
  end
  local ctx = { note = note, note_dir = dirname(note), scan = s, named = {}, collections = {}, previous_block = {} }

  -- Count blocks per heading (Org numbers every block of a section), then
  -- gather parameters, bodies, names and :noweb-ref collections.
  local last_heading, counter, previous = false, 0, nil
  for _, b in ipairs(s.blocks) do
    if b.heading == last_heading then counter = counter + 1 else counter = 1; last_heading = b.heading end
    b.counter = counter
    ctx.previous_block[b] = previous
    previous = b
    -- Under a COMMENT heading a block does not exist for Org (nor for pandoc);
    -- under an :ARCHIVE: one it is not tangled but still answers references.
    local h = b.heading
    b.commented, b.archived = false, false
    while h do
      b.commented = b.commented or h.commented
      b.archived = b.archived or h.archived
      h = h.parent
    end
    if b.lang == 'C++' or b.lang == 'c++' then
      report(b.place, 'language "' .. b.lang .. '": Org maps it to no mode and mangles it; write cpp')
    elseif not b.commented then
      -- pandoc drops an archived subtree's blocks as well: expected, not lost.
      if not view.seen[b.line] and not b.archived then
        report(b.place, 'source block not seen by pandoc\'s org reader; it would be lost')
      end
      b.params = block_params(s, b, file_props)
      b.body = normalized_body(s, b)
      if b.name then
        if ctx.named[b.name] then
          report(b.place, 'a block named "' .. b.name .. '" already exists at ' .. ctx.named[b.name].place)
        else
          ctx.named[b.name] = b
        end
      end
      local ref = b.params[':noweb-ref']
      if ref then
        ctx.collections[ref] = ctx.collections[ref] or {}
        table.insert(ctx.collections[ref], b)
      end
    end
  end

  for _, b in ipairs(s.blocks) do
    if b.params and not b.archived and b.params[':tangle'] ~= 'no' then
      local path = target_path(ctx, b)
      if path then
        local lines = b.body
        if noweb_allowed(b.params, 'tangle') then
          lines = expand_noweb(ctx, b, lines, { [b] = true })
        end
        -- Org removes indentation again here whatever the block's -i switch
        -- says (only org-src-preserve-indentation would stop it).
        lines = org_trim(remove_indentation(lines))
        local chunk = { block = b, lines = lines, params = b.params }
        local comments = b.params[':comments'] or 'no'
        if comments == 'noweb' then
          report(b.place, ':comments noweb is not supported; use link')
        end
        chunk.link = comments == 'link' or comments == 'yes' or comments == 'both' or comments == 'noweb'
        if chunk.link then chunk.link_target, chunk.source_name = link_data(ctx, b, path) end
        if comments == 'both' or comments == 'org' then chunk.org_text = org_comment_text(ctx, b) end
        local file = note_files[path]
        if not file then
          file = { note = note, place = b.place, chunks = {}, mkdirp = false }
          note_files[path] = file
          file_order[#file_order + 1] = path
        elseif file.note ~= note then
          report(b.place, path .. ' is also written by ' .. file.place .. '; a file belongs to one note')
        end
        local mk = b.params[':mkdirp']
        if mk and mk ~= 'no' then file.mkdirp = true end
        table.insert(file.chunks, chunk)
      end
    end
  end
end

---------------------------------------------------------------------------
-- Assembling files (org-babel-tangle's loop) with a line-level source map

local function assemble(path, file)
  local out = {}     -- { text, note_line }
  local shebang_done, shebang = false, nil
  local function emit(text, origin) out[#out + 1] = { text = text, origin = origin } end
  for _, chunk in ipairs(file.chunks) do
    local b = chunk.block
    if #out > 0 and chunk.params[':padline'] ~= 'no' then emit('', b.line) end
    local sb = chunk.params[':shebang']
    if sb and sb ~= '' and not shebang_done then
      emit(sb, b.line); shebang_done = true; shebang = true
    end
    if chunk.org_text and chunk.org_text:find('%S') then
      for _, l in ipairs(comment_lines(nil, b, chunk.org_text, b.line)) do emit(l.text, l.origin) end
      emit('', b.line)
      -- comment-region leaves point after the text; Org then adds a newline,
      -- so a text ending in a newline leaves one more blank line.
      if chunk.org_text:sub(-1) == '\n' then
        out[#out] = nil
        emit('', b.line)
      end
    end
    if chunk.link then
      emit((comment_syntax[b.lang] or '#') .. ' [[' .. chunk.link_target .. '][' .. chunk.source_name .. ']]', b.line)
    end
    for _, l in ipairs(chunk.lines) do emit(l.text, l.origin) end
    if #chunk.lines == 0 then emit('', b.line) end
    if chunk.link then
      emit((comment_syntax[b.lang] or '#') .. ' ' .. chunk.source_name .. ' ends here', b.last)
    end
  end
  local texts = {}
  for k, l in ipairs(out) do texts[k] = l.text end
  return table.concat(texts, '\n') .. '\n', out, shebang
end

---------------------------------------------------------------------------
-- Checking the tree: orphans, the banner line

local function list_files(folder, suffix)
  local found = {}
  local p = io.popen('cd "' .. OUT .. '" 2>/dev/null && [ -d "' .. folder .. '" ] && find "' .. folder .. '" -type f 2>/dev/null')
  if p then
    for line in p:lines() do
      if not suffix or line:sub(-#suffix - 1) == '.' .. suffix then found[#found + 1] = line end
    end
    p:close()
  end
  table.sort(found)
  return found
end


local function check_orphans()
  for _, f in ipairs(owned_folders()) do
    for _, path in ipairs(list_files(f.folder, f.suffix)) do
      if not note_files[path] then
        report(path, 'no note tangles this file (an orphan): delete it, or add its block to a note')
      end
    end
  end
end

local function check_banner(path, file, text)
  for _, f in ipairs(owned_folders()) do
    if f.folder ~= 'diagrams' and path:sub(1, #f.folder + 1) == f.folder .. '/' then
      local first = text:match('^[^\n]*')
      if not first:find(file.note, 1, true) then
        report(file.place, path .. ' must start with a line naming its note (' .. file.note .. ')')
      end
    end
  end
end

---------------------------------------------------------------------------
-- Writing: only what changed, all or nothing

local function write_atomically(path, text, executable, mkdirp)
  local full = OUT .. '/' .. path
  local dir = dirname(full)
  if mkdirp then os.execute('mkdir -p "' .. dir .. '"') end
  local tmp = full .. '.tangle-tmp'
  local f, err = io.open(tmp, 'wb')
  if not f then return false, err end
  f:write(text)
  f:close()
  if executable then os.execute('chmod 755 "' .. tmp .. '"') end
  local ok, rename_err = os.rename(tmp, full)
  return ok, rename_err
end

-- One line per run of consecutive lines: "FILE START COUNT NOTE NOTE_START",
-- each generated line START+k coming from NOTE line NOTE_START+k.
local function sourcemap_lines(path, file, out)
  local rows, k = {}, 1
  while k <= #out do
    local start = k
    while k < #out and out[k + 1].origin == out[k].origin + 1 do k = k + 1 end
    rows[#rows + 1] = string.format('%s\t%d\t%d\t%s\t%d', path, start, k - start + 1, file.note, out[start].origin)
    k = k + 1
  end
  return rows
end

function Pandoc(doc)
  local notes = {}
  for note in (os.getenv('CARACAL_NOTES') or ''):gmatch('%S+') do notes[#notes + 1] = note end
  table.sort(notes)
  for _, note in ipairs(notes) do tangle_note(note) end

  local results, map_rows = {}, {}
  table.sort(file_order)
  for _, path in ipairs(file_order) do
    local file = note_files[path]
    local text, out, shebang = assemble(path, file)
    check_banner(path, file, text)
    results[#results + 1] = { path = path, text = text, shebang = shebang, mkdirp = file.mkdirp }
    for _, row in ipairs(sourcemap_lines(path, file, out)) do map_rows[#map_rows + 1] = row end
  end
  if os.getenv('CARACAL_ORPHANS') ~= '0' then check_orphans() end

  if #errors > 0 then
    for _, e in ipairs(errors) do io.stderr:write(e, '\n') end
    io.stderr:write('tangle: ', #errors, ' error', #errors == 1 and '' or 's', '; nothing written\n')
    os.exit(1)
  end

  local changed = 0
  for _, r in ipairs(results) do
    local old = read_file(OUT .. '/' .. r.path)
    if old == r.text and r.shebang and MODE ~= 'check' and
       not os.execute('[ -x "' .. OUT .. '/' .. r.path .. '" ]') then
      os.execute('chmod 755 "' .. OUT .. '/' .. r.path .. '"')  -- same text, lost its mode
    end
    if old ~= r.text then
      changed = changed + 1
      if MODE == 'check' then
        io.stderr:write(r.path, ': differs from a fresh tangle of ', note_files[r.path].note, '\n')
      else
        local dir_exists = os.execute('[ -d "' .. dirname(OUT .. '/' .. r.path) .. '" ]')
        if not dir_exists and not r.mkdirp then
          io.stderr:write(note_files[r.path].place, ': folder of ', r.path, ' does not exist (add :mkdirp yes)\n')
          os.exit(1)
        end
        local ok, err = write_atomically(r.path, r.text, r.shebang, r.mkdirp)
        if not ok then
          io.stderr:write(note_files[r.path].place, ': cannot write ', r.path, ': ', tostring(err), '\n')
          os.exit(1)
        end
      end
    end
  end
  if SOURCEMAP and MODE ~= 'check' then
    local text = table.concat(map_rows, '\n') .. '\n'
    if read_file(SOURCEMAP) ~= text then
      os.execute('mkdir -p "' .. dirname(SOURCEMAP) .. '"')
      local f = assert(io.open(SOURCEMAP, 'wb'))
      f:write(text)
      f:close()
    end
  end
  if MODE == 'check' then
    if changed > 0 then
      io.stderr:write('check-tangle: ', changed, ' file(s) differ from the notes; run make tangle and commit\n')
      os.exit(1)
    end
    io.stderr:write('check-tangle: ', #results, ' files match the notes\n')
  elseif os.getenv('CARACAL_VERBOSE') then
    io.stderr:write('tangle: ', #notes, ' notes, ', #results, ' files, ', changed, ' rewritten\n')
  end
  return doc
end
