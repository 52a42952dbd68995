#!/usr/bin/env python3
"""Embeds a text file into a C++ source as esw::cfg::default_config_yaml()."""
import sys

src, out = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
delim = "ESWYAML"
assert f'){delim}"' not in text
with open(out, "w", encoding="utf-8") as f:
    f.write('#include "config/config.h"\n\nnamespace esw::cfg {\n\n')
    f.write(f'const char* default_config_yaml() {{\n  return R"{delim}({text}){delim}";\n}}\n\n')
    f.write("}  // namespace esw::cfg\n")
