"""`ferry -t` warns, without failing, about a configuration that works but
is unsafe: the inspector's replay on an admin listener that is not on a
loopback address (issue 15)."""
import ferrytest as ft
from ferrytest import check, eq

WARNING = ("warning: admin.replay: replay is on while admin.address {addr} is not a loopback "
           "address: anyone who can reach it can make ferry resend captured requests; listen on "
           "127.0.0.1 or [::1] (or set replay: false)")


def config(address, replay):
    return f"""listeners:
  - address: 127.0.0.1:18080
admin:
  address: "{address}"
  replay: {replay}
"""


def test_replay_on_a_public_admin_address_warns_and_passes():
    for addr in ("0.0.0.0:9901", "[::]:9901", "192.0.2.1:9901"):
        rc, out, path = ft.ferry_check(config(addr, "true"))
        eq(rc, 0, f"ferry -t exit code for {addr}")
        want = f"{path}:5:11: " + WARNING.format(addr=addr)
        check(want in out.splitlines(), f"no warning line {want!r} in:\n{out}")
        check(f"{path}: ok" in out, out)


def test_replay_on_loopback_or_off_does_not_warn():
    for addr, replay in (("127.0.0.1:9901", "true"), ("[::1]:9901", "true"),
                         ("localhost:9901", "true"), ("0.0.0.0:9901", "false")):
        rc, out, _ = ft.ferry_check(config(addr, replay))
        eq(rc, 0, f"ferry -t exit code for {addr} replay {replay}")
        check("warning" not in out, f"unexpected warning for {addr} replay {replay}:\n{out}")


if __name__ == "__main__":
    ft.main(globals())
