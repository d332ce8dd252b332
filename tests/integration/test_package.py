"""Install and package (issue 17): `make install` honours PREFIX and DESTDIR
and keeps an edited configuration; `make deb` builds a Debian package whose
listing, control files, systemd unit, logrotate file and man pages are
checked, and whose binary, extracted with dpkg-deb -x, accepts the packaged
configuration under -t. `systemd-analyze verify` checks the unit where it
exists (the test says when it is skipped).

Both use a build tree of their own next to the test build
(BUILD/pkgtest), so a second run only re-links what changed."""
import gzip
import os
import re
import shutil
import subprocess
import tempfile

import ferrytest as ft
from ferrytest import check, eq

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
PKG_BUILD = os.path.join(os.path.dirname(os.path.abspath(ft.FERRY_BIN)), "pkgtest")


def make(*args, timeout=600):
    # The package's build tree builds no tests (make deb sets this too; make
    # install keeps what the cache says).
    if not os.path.exists(os.path.join(PKG_BUILD, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", SRC, "-B", PKG_BUILD, "-DFERRY_TESTS=OFF"],
                       capture_output=True, timeout=120, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    p = subprocess.run(["make", "--no-print-directory", "-C", SRC, *args, f"DEB_BUILD={PKG_BUILD}",
                        f"BUILD={PKG_BUILD}", "JOBS=2"], env=env, capture_output=True, text=True,
                       timeout=timeout)
    check(p.returncode == 0, f"make {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout + p.stderr


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def unit_settings(text):
    """systemd unit text -> {key: [values]} (all sections)."""
    out = {}
    for ln in text.splitlines():
        ln = ln.strip()
        if ln and not ln.startswith(("#", ";", "[")) and "=" in ln:
            k, v = ln.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_make_install_honours_prefix_and_destdir_and_keeps_the_config():
    with tempfile.TemporaryDirectory(prefix="ferry-install-") as dest:
        prefix = "/srv/ferry-test"  # not /usr or /opt/X, where etc/ moves (GNUInstallDirs)
        make("install", f"PREFIX={prefix}", f"DESTDIR={dest}")
        root = dest + prefix
        for rel in ("bin/ferry", "etc/ferry/proxy.yaml", "etc/logrotate.d/ferry",
                    "lib/systemd/system/ferry.service", "share/man/man8/ferry.8.gz",
                    "share/man/man5/proxy.yaml.5.gz"):
            check(os.path.isfile(os.path.join(root, rel)), f"{prefix}/{rel} not installed under DESTDIR")
        check(os.access(os.path.join(root, "bin/ferry"), os.X_OK), "installed ferry is not executable")
        with open(os.path.join(root, "lib/systemd/system/ferry.service")) as f:
            unit = unit_settings(f.read())
        eq(unit["ExecStart"], [f"{prefix}/bin/ferry -c {prefix}/etc/ferry/proxy.yaml"], "ExecStart")
        # Nothing outside PREFIX (under DESTDIR).
        outside = [os.path.join(d, n) for d, _, ns in os.walk(dest) for n in ns
                   if not os.path.join(d, n).startswith(root + "/")]
        eq(outside, [], "files installed outside PREFIX")
        # A second install keeps an edited configuration.
        conf = os.path.join(root, "etc/ferry/proxy.yaml")
        with open(conf, "a") as f:
            f.write("# local edit\n")
        out = make("install", f"PREFIX={prefix}", f"DESTDIR={dest}")
        with open(conf) as f:
            check(f.read().endswith("# local edit\n"), "make install overwrote an edited proxy.yaml")
        check("Keeping existing configuration" in out, "make install did not say it kept the config")


def test_deb_lists_extracts_and_checks_its_config():
    out = make("deb")
    debs = [os.path.join(PKG_BUILD, n) for n in os.listdir(PKG_BUILD) if n.endswith(".deb")]
    eq(len(debs), 1, f"packages in {PKG_BUILD}")
    deb = debs[0]
    check(re.search(r"ferry_\d+\.\d+\.\d+_\w+\.deb$", deb), f"package name {deb}")
    check(os.path.basename(deb) in out, "make deb did not name the package")

    listing = run("dpkg-deb", "-c", deb).stdout
    paths = {ln.split()[-1].lstrip(".") for ln in listing.splitlines()}
    for p in ("/usr/bin/ferry", "/etc/ferry/proxy.yaml", "/lib/systemd/system/ferry.service",
              "/etc/logrotate.d/ferry", "/usr/share/man/man8/ferry.8.gz",
              "/usr/share/man/man5/proxy.yaml.5.gz"):
        check(p in paths, f"{p} missing from dpkg-deb -c:\n{listing}")
    check(re.search(r"^-rwxr-xr-x root/root .* \./usr/bin/ferry$", listing, re.M),
          "/usr/bin/ferry is not root-owned mode 755")

    conffiles = run("dpkg-deb", "-I", deb, "conffiles").stdout.split()
    check("/etc/ferry/proxy.yaml" in conffiles, f"proxy.yaml is not a conffile: {conffiles}")
    control = run("dpkg-deb", "-f", deb, "Package", "Depends", "Version").stdout
    check("Package: ferry" in control, control)
    check(re.search(r"Depends:.*libuv1.*", control) and "libyaml-0-2" in control,
          f"library dependencies missing: {control}")

    x = tempfile.mkdtemp(prefix="ferry-deb-")
    try:
        r = run("dpkg-deb", "-x", deb, x)
        eq(r.returncode, 0, f"dpkg-deb -x: {r.stderr}")
        ferry = os.path.join(x, "usr/bin/ferry")
        conf = os.path.join(x, "etc/ferry/proxy.yaml")
        r = run(ferry, "-t", "-c", conf)
        eq((r.returncode, r.stdout.strip()), (0, f"{conf}: ok"), f"packaged ferry -t: {r.stderr}")
        r = run(ferry, "--version")
        check(re.match(r"ferry \d+\.\d+\.\d+", r.stdout), f"--version: {r.stdout!r}")
        check(r.stdout.split()[1] in os.path.basename(deb), "package version != ferry --version")

        unit_path = os.path.join(x, "lib/systemd/system/ferry.service")
        with open(unit_path) as f:
            unit_text = f.read()
        u = unit_settings(unit_text)
        eq(u["ExecStartPre"], ["/usr/bin/ferry -t -c /etc/ferry/proxy.yaml"], "ExecStartPre")
        eq(u["ExecStart"], ["/usr/bin/ferry -c /etc/ferry/proxy.yaml"], "ExecStart")
        check("/bin/kill -HUP $MAINPID" in u["ExecReload"], f"ExecReload {u['ExecReload']}")
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                          ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
                          ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
                          ("LogsDirectory", "ferry")):
            eq(u.get(key), [want], key)

        with open(os.path.join(x, "etc/logrotate.d/ferry")) as f:
            rot = f.read()
        check("/var/log/ferry/" in rot and re.search(r"postrotate\s+systemctl kill --signal=USR1 ferry",
                                                     rot), f"logrotate file:\n{rot}")
        with open(conf) as f:
            check("/var/log/ferry/" in f.read(), "the packaged config does not log where logrotate rotates")

        mandir = os.path.join(x, "usr/share/man")
        for page, th in (("man8/ferry.8.gz", '.TH "FERRY" "8"'),
                         ("man5/proxy.yaml.5.gz", '.TH "PROXY.YAML" "5"')):
            with gzip.open(os.path.join(mandir, page), "rt") as f:
                text = f.read()
            check(text.startswith(th), f"{page} starts {text[:40]!r}")
            if shutil.which("groff"):
                r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=text,
                                   capture_output=True, text=True, timeout=60)
                eq(r.stderr, "", f"groff warnings on {page}")
            else:
                print(f"note: groff not installed: {page} not rendered")

        if shutil.which("systemd-analyze"):
            # The unit names /usr/bin/ferry and /etc/ferry: point a copy at the
            # extracted tree (verify checks the binary exists), and MANPATH at
            # its man pages (verify resolves Documentation=man:...).
            vdir = os.path.join(x, "verify")
            os.mkdir(vdir)
            with open(os.path.join(vdir, "ferry.service"), "w") as f:
                f.write(unit_text.replace("/usr/bin/ferry", ferry).replace("/etc/ferry/", os.path.dirname(conf) + "/"))
            r = run("systemd-analyze", "verify", os.path.join(vdir, "ferry.service"),
                    env=dict(os.environ, MANPATH=mandir))
            eq(r.returncode, 0, f"systemd-analyze verify: {r.stdout}{r.stderr}")
        else:
            print("note: systemd-analyze not found: the unit was not verified (install systemd to check it)")
    finally:
        shutil.rmtree(x)


def test_man_pages_cover_the_reference():
    """Every key of the README's configuration tables is in proxy.yaml(5),
    every signal of its Signals table in ferry(8)."""
    with tempfile.TemporaryDirectory() as d:
        r = run("python3", os.path.join(SRC, "scripts", "man.py"), os.path.join(SRC, "README.md"), d, "0.0.0")
        eq(r.returncode, 0, f"man.py: {r.stderr}")
        with open(os.path.join(d, "proxy.yaml.5")) as f:
            p5 = f.read()
        with open(os.path.join(d, "ferry.8")) as f:
            p8 = f.read()
    with open(os.path.join(SRC, "README.md")) as f:
        readme = f.read()
    conf = readme.split("## Configuration (proxy.yaml)", 1)[1].split("\n## ", 1)[0]
    keys = re.findall(r"^\| `([^`]+)` \|", conf, re.M)
    check(len(keys) > 30, f"only {len(keys)} keys found in the README's tables")
    for k in keys:
        check(k.replace("-", "\\-") in p5, f"proxy.yaml(5) lacks {k}")
    sigs = readme.split("### Signals", 1)[1].split("\n### ", 1)[0]
    for s in set(re.findall(r"`(SIG[A-Z0-9]+)`", sigs)):
        check(s in p8, f"ferry(8) lacks {s}")
    synopsis = p8.split(".SH SYNOPSIS", 1)[1].split(".SH ", 1)[0]
    check("ferry -t [-c FILE]" in synopsis, "ferry(8) synopsis lacks ferry -t [-c FILE]")


ft.main(globals())
