#!/usr/bin/env bash
# Java runs the PTB tokenizer inside pycocoevalcap (CIDEr). Install a headless JRE where it is missing
# and we may; otherwise say clearly what captioning scores will lack.
if java -version >/dev/null 2>&1; then
  java -version 2>&1 | head -n 1
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "java not found: installing default-jre-headless with apt-get"
  apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null && java -version 2>&1 | head -n 1 && exit 0
fi
echo "WARNING: java not found and could not be installed; captioning CIDEr will use lntune's approximate pure-Python tokenizer" >&2
exit 0
