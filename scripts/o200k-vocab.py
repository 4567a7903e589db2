#!/usr/bin/env python3
"""Writes assets/o200k_base.vocab from OpenAI's o200k_base.tiktoken (as shipped in tiktoken-rs).

The .tiktoken file is one `base64(token) rank` line per token, ranks 0..199997 in order. The
vocab file keeps only what counting needs: per rank, in rank order, one length byte and the raw
token bytes (1.6 MB instead of 3.6 MB, and no decoding at start-up). A unit test checks every
rank against tiktoken-rs, so a wrong file cannot pass.

    scripts/o200k-vocab.py ~/.cargo/registry/src/*/tiktoken-rs-0.12.1/assets/o200k_base.tiktoken
"""
import base64
import sys
from pathlib import Path

out = bytearray()
for expected, line in enumerate(Path(sys.argv[1]).read_text().splitlines()):
    raw, rank = line.split()
    token = base64.b64decode(raw)
    assert int(rank) == expected and 0 < len(token) < 256, (rank, token)
    out += bytes([len(token)]) + token
target = Path(__file__).resolve().parent.parent / "assets" / "o200k_base.vocab"
target.write_bytes(bytes(out))
print(f"{target}: {expected + 1} tokens, {len(out)} bytes")
