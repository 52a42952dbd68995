#pragma once
// "Did you mean": the distance the loader (unknown keys, unknown actions) and the field registry (unknown
// fields) use to suggest a near name.

#include <cstddef>
#include <string_view>

namespace esw::cfg {

// Levenshtein distance (insertions, deletions, substitutions).
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace esw::cfg
