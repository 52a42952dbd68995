#pragma once
// A one-line progress display on stderr for long operations (a 100k-rule apply): a spinner, the phase and the
// elapsed time, redrawn in place. Only on a terminal; silent when stderr is a pipe or a file, so scripts and
// --json output never see it.

#include <chrono>
#include <string>

namespace esw::ctl {

class Progress {
 public:
  // enabled: usually stderr_is_tty().
  Progress(std::string label, bool enabled);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();  // clears the line

  void update(const std::string& status);
  void clear();
  bool enabled() const { return enabled_; }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  unsigned frame_ = 0;
  std::chrono::steady_clock::time_point start_;
};

bool stderr_is_tty();
bool stdout_is_tty();

}  // namespace esw::ctl
