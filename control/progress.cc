#include "control/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace esw::ctl {

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }
bool stdout_is_tty() { return isatty(STDOUT_FILENO) == 1; }

Progress::Progress(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { clear(); }

void Progress::update(const std::string& status) {
  if (!enabled_) return;
  static constexpr const char* kFrames[] = {"|", "/", "-", "\\"};
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  fmt::print(stderr, "\r\033[K{} {}: {} [{:.1f} s]", kFrames[frame_++ % 4], label_, status, s);
  fflush(stderr);
  drawn_ = true;
}

void Progress::clear() {
  if (!drawn_) return;
  fmt::print(stderr, "\r\033[K");
  fflush(stderr);
  drawn_ = false;
}

}  // namespace esw::ctl
