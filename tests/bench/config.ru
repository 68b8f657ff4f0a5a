# tests/bench/config.ru: tangled from notes/benchmarks.org; edit the note, not this file.

# [[file:../../notes/benchmarks.org::*The peers' configuration][The peers' configuration:5]]
# The two routes of caracal's demo app that the benchmarks use, for Puma.
HELLO = "Hello, world!".freeze

def plain(status, body)
  [status, { "Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s }, [body]]
end

run lambda { |env|
  case env["PATH_INFO"]
  when "/", "/hello" then plain(200, HELLO)
  when "/sleep"
    ms = env["QUERY_STRING"].to_s[/(?:\A|&)ms=(\d+)/, 1].to_i
    sleep(ms / 1000.0)
    plain(200, "slept #{ms} ms\n")
  else plain(404, "not found\n")
  end
}
# The peers' configuration:5 ends here
