#!/usr/bin/env python3
"""Generates the man pages ferry(8) and proxy.yaml(5) from README.md.

    scripts/man.py README.md OUTDIR VERSION

The README is the one reference; this script only reformats sections of it
(found by their headings) into roff for man(7): headings, paragraphs, bullet
lists, fenced code and tables (one .TP entry per row) and inline `code`,
**bold** and [links]. It writes OUTDIR/ferry.8 and OUTDIR/proxy.yaml.5, each
also gzipped (.gz, as Debian installs man pages), and fails, naming the
heading, when a section the pages need is missing.
Standard library only; the output does not depend on the time of the build.
"""
import gzip
import os
import re
import sys

# (README heading, man section title, required). "##" sections are taken
# with their "###" subsections; a "###" heading is taken alone.
FERRY_8 = [
    ("## Command line", "OPTIONS", True),
    ("### Signals", "SIGNALS", True),
    ("### Admin listener", "ADMIN LISTENER", False),
    ("### Metrics", "METRICS", False),
    ("### Connections", "CONNECTIONS", False),
    ("### Logs", "LOGS", False),
    ("### systemd", "SYSTEMD", False),
]
PROXY_YAML_5 = [
    ("## Configuration (proxy.yaml)", "DESCRIPTION", True),
    ("## Upstreams", "UPSTREAMS", False),
    ("## Access log", "ACCESS LOG", False),
]


def sections(lines):
    """Maps each heading line ("## X", "### Y") to its body lines, outside
    fenced code (a "#" in a code block is not a heading)."""
    heads, fence = [], False
    for i, ln in enumerate(lines):
        if ln.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,4} ", ln):
            heads.append((i, ln.rstrip()))
    out = {}
    for k, (i, h) in enumerate(heads):
        level = len(h) - len(h.lstrip("#"))
        end = len(lines)
        for j, h2 in heads[k + 1:]:
            if len(h2) - len(h2.lstrip("#")) <= level:
                end = j
                break
        out[h] = lines[i + 1:end]
    return out


def esc(text):
    """Plain text to roff: backslashes escaped, non-ASCII characters as
    \\[uXXXX] escapes (so no input encoding has to be guessed)."""
    text = text.replace("\\", "\\e")
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)


def inline(text):
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append("\\fB" + esc(p[1:-1]).replace("-", "\\-") + "\\fR")
        else:
            p = re.sub(r"\[([^\]]+)\]\(#[^)]*\)", r"\1", p)
            p = re.sub(r"\[([^\]]+)\]\(([^)]*)\)", r"\1 <\2>", p)
            p = esc(p)
            p = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", p)
            out.append(p)
    return "".join(out)


def line_out(s):
    """A roff text line: one starting with . or ' would be a request."""
    s = s.rstrip()
    return "\\&" + s if s[:1] in (".", "'") else s


def split_row(ln):
    cells = re.split(r"(?<!\\)\|", ln.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def convert(body, title, out):
    out.append(f".SH {title}")
    i, n = 0, len(body)
    while i < n:
        ln = body[i].rstrip("\n")
        if not ln.strip():
            i += 1
            continue
        if ln.startswith("```"):
            i += 1
            out += [".PP", ".RS 2", ".nf"]
            while i < n and not body[i].startswith("```"):
                out.append(line_out(esc(body[i].rstrip("\n"))))
                i += 1
            out += [".fi", ".RE"]
            i += 1
            continue
        m = re.match(r"^(#{2,4}) (.*)", ln)
        if m:
            out.append(".SS " + inline(m.group(2)).replace('"', ""))
            i += 1
            continue
        if ln.startswith("|") and i + 1 < n and re.match(r"^\|[-:| ]+\|\s*$", body[i + 1]):
            header = [h.lower() for h in split_row(ln)]
            i += 2
            while i < n and body[i].startswith("|"):
                cells = split_row(body[i])
                cells += [""] * (len(header) - len(cells))
                out.append(".TP")
                out.append(line_out(inline(cells[0])))
                extra = []
                for h, v in zip(header[1:-1], cells[1:-1]):
                    if v:
                        extra.append(f"{h}: {v}")
                text = "; ".join(extra)
                if len(header) > 1 and cells[-1]:
                    text = (text + ". " if text else "") + cells[-1]
                out.append(line_out(inline(text)))
                i += 1
            continue
        if re.match(r"^\s*[-*] ", ln):
            indent = len(ln) - len(ln.lstrip())
            item = [ln.strip()[2:]]
            i += 1
            while i < n and body[i].strip() and not re.match(r"^\s*[-*] ", body[i]) \
                    and not body[i].startswith(("```", "|", "#")):
                item.append(body[i].strip())
                i += 1
            out.append(".IP \\(bu 2" if indent == 0 else ".IP \\(bu 4")
            out.append(line_out(inline(" ".join(item))))
            continue
        para = []
        while i < n and body[i].strip() and not body[i].startswith(("```", "|", "#")) \
                and not re.match(r"^\s*[-*] ", body[i]):
            para.append(body[i].strip())
            i += 1
        out.append(".PP")
        # One output line per paragraph: an inline `code` span may cross
        # the README's line breaks.
        out.append(line_out(inline(" ".join(para))))


def page(secs, name, section, summary, version, parts, synopsis, files, see_also):
    out = [f'.TH "{name.upper()}" "{section}" "" "ferry {version}" "ferry"',
           ".\\\" Generated from README.md by scripts/man.py; edit the README, not this file.",
           ".SH NAME", f"{esc(name)} \\- {esc(summary)}"]
    if synopsis:
        out += [".SH SYNOPSIS", ".nf"] + [line_out(esc(s)) for s in synopsis] + [".fi"]
    for heading, title, required in parts:
        if heading not in secs:
            if required:
                sys.exit(f"man.py: README.md has no section \"{heading}\"; "
                         f"the man page needs it (update FERRY_8/PROXY_YAML_5 in scripts/man.py)")
            continue
        convert(secs[heading], title, out)
    out += [".SH FILES"]
    for path, what in files:
        out += [".TP", f"\\fI{esc(path)}\\fR", esc(what)]
    out += [".SH SEE ALSO", ",\n".join(f"\\fB{esc(p)}\\fR({s})" for p, s in see_also)]
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: man.py README.md OUTDIR VERSION")
    readme, outdir, version = sys.argv[1:]
    with open(readme, encoding="utf-8") as f:
        lines = f.read().split("\n")
    secs = sections(lines)
    cmdline = secs.get("## Command line")
    if cmdline is None:
        sys.exit('man.py: README.md has no section "## Command line"')
    # The synopsis is the first code block of "Command line"; the rest of
    # that section becomes OPTIONS.
    start = next(i for i, ln in enumerate(cmdline) if ln.startswith("```"))
    end = next(i for i in range(start + 1, len(cmdline)) if cmdline[i].startswith("```"))
    synopsis = [ln for ln in cmdline[start + 1:end]]
    secs["## Command line"] = cmdline[:start] + cmdline[end + 1:]
    files = [("/etc/ferry/proxy.yaml", "the configuration (proxy.yaml(5)); ferry -t checks it"),
             ("/lib/systemd/system/ferry.service", "the systemd unit: reload = ferry -t, then SIGHUP"),
             ("/etc/logrotate.d/ferry", "rotates /var/log/ferry/*.log and sends SIGUSR1")]
    pages = {
        "ferry.8": page(secs, "ferry", 8, "layer-7 reverse proxy for HTTP/1.0 and HTTP/1.1",
                        version, FERRY_8, synopsis, files,
                        [("proxy.yaml", 5), ("systemctl", 1), ("logrotate", 8)]),
        "proxy.yaml.5": page(secs, "proxy.yaml", 5, "configuration file of the ferry reverse proxy",
                             version, PROXY_YAML_5, None, files[:1], [("ferry", 8)]),
    }
    os.makedirs(outdir, exist_ok=True)
    for name, text in pages.items():
        data = text.encode("utf-8")
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        # mtime 0 and no file name inside: the same README gives the same bytes.
        with open(os.path.join(outdir, name + ".gz"), "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
                gz.write(data)


if __name__ == "__main__":
    main()
