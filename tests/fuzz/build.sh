#!/usr/bin/env bash
# Builds ferry's libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined).
# Usage: tests/fuzz/build.sh [OUTDIR]   (default: build-fuzz/ in the repository)
# Each target links only the pure modules it exercises (and libuv, which the
# buffer module refers to). llhttp comes from the system library or Debian's node-llhttp sources.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/build-fuzz}"
mkdir -p "$out"
CC="${CC_FUZZ:-clang}"
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -fno-omit-frame-pointer -I"$root/include")
llhttp=()
if pkg-config --exists libllhttp 2>/dev/null; then
  flags+=($(pkg-config --cflags libllhttp)); llhttp=($(pkg-config --libs libllhttp))
else
  flags+=(-isystem /usr/share/include/llhttp)
  mkdir -p "$out/llhttp"
  for f in api http llhttp; do
    [ "$out/llhttp/$f.o" -nt "/usr/share/llhttp/$f.c" ] ||
      "$CC" -g -O1 -fsanitize=address -w -I/usr/share/include/llhttp -c "/usr/share/llhttp/$f.c" -o "$out/llhttp/$f.o"
    llhttp+=("$out/llhttp/$f.o")
  done
fi
yaml=($(pkg-config --cflags --libs yaml-0.1))
uv=($(pkg-config --cflags --libs libuv)) # buf.c (arenas) refers to uv_try_write
src="$root/src"
# The configuration loader in its parts (YAML tree, typed values, schema);
# config.c builds listeners' TLS contexts (src/tls.c), which brings the
# stream, its buffers, libuv and OpenSSL along.
config=("$src/config.c" "$src/ydoc.c" "$src/cfgval.c" "$src/cfgroute.c" "$src/cfgtls.c" "$src/cidr.c"
        "$src/tls.c" "$src/tlsinfo.c" "$src/stream.c" "$src/splice.c" "$src/buf.c" "$src/log.c")
tlslibs=($(pkg-config --cflags --libs openssl))
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_request.c" "$src/http_head.c" "$src/http_head_build.c" \
  "$src/router.c" "${config[@]}" "$src/request.c" "$src/err.c" "$src/chunked.c" "${llhttp[@]}" \
  "${yaml[@]}" "${uv[@]}" "${tlslibs[@]}" -o "$out/fuzz_request"
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_response.c" "$src/http_head.c" "$src/http_head_build.c" \
  "${llhttp[@]}" -o "$out/fuzz_response"
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_config.c" "${config[@]}" "$src/router.c" \
  "$src/http_head.c" "${yaml[@]}" "${llhttp[@]}" "${uv[@]}" "${tlslibs[@]}" -o "$out/fuzz_config"
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_h1parse.c" "$src/h1parse.c" "$src/http_head.c" \
  "${llhttp[@]}" -o "$out/fuzz_h1parse"
# The TLS transport under a stream, on a real loop and socketpair.
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_tls.c" "$src/tls.c" "$src/tlsinfo.c" "$src/stream.c" "$src/splice.c" "$src/buf.c" \
  "$src/log.c" "${uv[@]}" "${tlslibs[@]}" -o "$out/fuzz_tls"
echo "built: $out/fuzz_request $out/fuzz_response $out/fuzz_config $out/fuzz_h1parse $out/fuzz_tls"
