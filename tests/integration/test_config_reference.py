"""The README's configuration reference lists exactly the keys ferry accepts
(issue 3).

The keys the code accepts are not copied from anywhere: they are discovered
from the built ferry itself. At every mapping of the configuration, the test
writes one key that cannot exist and runs `ferry -t`; the loader answers
`unknown key "..." (expected a, b or c)`, which lists the keys of that
mapping. Each key found is then probed as a mapping ({bogus: 1}) and as a
list of mappings ([{bogus: 1}]) to walk into nested sections, so a key added
to the loader shows up here without editing this test.

The README side is every backticked key path in the first column of the
tables of its "Configuration (proxy.yaml)" section, written as
`listeners[].address`, `upstreams.NAME.keepalive.max_idle`,
`routes[].redirect.status`.

The test fails on a key the code accepts that the README does not list, and
on a key the README lists that the code does not accept."""
import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile

import ferrytest as ft
from ferrytest import check

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BOGUS = "zzzzzzzzzzzzzzzzzzzz"
UNKNOWN = re.compile(r'unknown key "' + BOGUS + r'" \(expected (.*)\)$')

BASE = {
    "listeners": [{"address": "127.0.0.1:18080"}],
    "upstreams": {"api": {"servers": [{"address": "127.0.0.1:9001"}]}},
    "routes": [{"upstream": "api"}],
}
# The minimal valid content of each kind of mapping, used next to a probed
# key when the key alone would not be read (a route without an action is
# rejected before its other keys are looked at).
FILLER = {
    "listeners[]": {"address": "127.0.0.1:18080"},
    "upstreams.NAME": {"servers": [{"address": "127.0.0.1:9001"}]},
    "upstreams.NAME.servers[]": {"address": "127.0.0.1:9001"},
    "routes[]": {"upstream": "api"},
}
# Mappings whose keys are names the user chooses, with the name used in the
# README for them and one example key.
NAMED = {"upstreams": ("NAME", "api")}

_tmp = tempfile.mkdtemp(prefix="ferry-keys-")
atexit.register(shutil.rmtree, _tmp, True)
_runs = [0]


def run_check(config):
    """ferry -t on a config (JSON is YAML); returns the output lines."""
    _runs[0] += 1
    path = os.path.join(_tmp, f"c{_runs[0]}.yaml")
    with open(path, "w") as f:
        json.dump(config, f)
    p = subprocess.run([ft.FERRY_BIN, "-t", "-c", path], capture_output=True, timeout=30)
    return (p.stdout + p.stderr).decode().splitlines()


def listed_keys(lines):
    """Keys from an "unknown key BOGUS (expected ...)" line, or None."""
    for line in lines:
        m = UNKNOWN.search(line)
        if m:
            return [k for k in re.split(r", | or ", m.group(1)) if k]
    return None


def level_names(steps):
    """README names of the containers reached by each prefix of steps
    (mapping keys, list index 0, chosen names)."""
    names, name, parent_key = [], "", None
    for s in steps:
        if isinstance(s, int):
            name += "[]"
        elif parent_key in NAMED and not name.endswith("]") and name.split(".")[-1] == parent_key:
            name += "." + NAMED[parent_key][0]
        else:
            name = f"{name}.{s}" if name else s
        parent_key = s if not isinstance(s, int) else None
        names.append(name)
    return names


def with_level(steps, content, fill):
    """BASE with the value at steps replaced by content; every mapping on
    the way holds only the next step, plus its FILLER when fill is true."""
    names = level_names(steps)
    value = content
    for i in reversed(range(len(steps))):
        s = steps[i]
        if isinstance(s, int):
            value = [value]
            continue
        parent = names[i - 1] if i > 0 else ""
        d = dict(FILLER.get(parent, {})) if fill else {}
        d[s] = value
        value = d
    cfg = json.loads(json.dumps(BASE))
    cfg.update(value)
    return cfg


def level_keys(steps, name):
    """Keys of the mapping at steps (README name `name`), or None when it is
    not a mapping with fixed keys. Tries the probe alone, then next to the
    fillers of the level and of the mappings above it."""
    for fill in (False, True):
        content = dict(FILLER.get(name, {})) if fill else {}
        content[BOGUS] = 1
        keys = listed_keys(run_check(with_level(steps, content, fill)))
        if keys is not None:
            return keys
    return None


def discover(steps=(), name="", found=None):
    """Walks the configuration schema; returns {path: is_leaf}."""
    found = {} if found is None else found
    keys = level_keys(list(steps), name)
    check(keys, f"no key list for {name or 'the top level'}")
    for k in keys:
        path = f"{name}.{k}" if name else k
        if k in NAMED and not steps:
            label, example = NAMED[k]
            found[path] = False
            discover((*steps, k, example), f"{path}.{label}", found)
        elif level_keys([*steps, k, 0], f"{path}[]") is not None:  # a list of mappings
            found[path] = False
            found[f"{path}[]"] = False
            discover((*steps, k, 0), f"{path}[]", found)
        elif level_keys([*steps, k], path) is not None:  # a mapping
            found[path] = False
            discover((*steps, k), path, found)
        else:
            found[path] = True
    return found


def readme_keys():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"^## Configuration \(proxy\.yaml\)\n(.*?)^## ", text, re.S | re.M)
    check(m, "README has a '## Configuration (proxy.yaml)' section")
    keys = set()
    for line in m.group(1).splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        first = line.split("|")[1]
        keys.update(re.findall(r"`([^`]+)`", first))
    return keys


def test_readme_configuration_reference_matches_the_loader():
    code = discover()
    check(len(code) > 40, f"discovered only {len(code)} keys: {sorted(code)}")
    for must in ("listeners[].address", "routes[].path_prefix", "upstreams.NAME.servers[].address",
                 "routes[].redirect.status", "upstreams.NAME.health_check.interval"):
        check(must in code, f"discovery found {must}: {sorted(code)}")
    doc = readme_keys()
    leaves = {k for k, leaf in code.items() if leaf}
    missing = sorted(leaves - doc)
    unknown = sorted(doc - set(code))
    check(not missing and not unknown,
          "README configuration reference and the loader differ:\n"
          f"  accepted by ferry but not in the README: {missing}\n"
          f"  in the README but not accepted by ferry: {unknown}")


ft.main(globals())
