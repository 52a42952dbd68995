#pragma once
// Set-up and control-path failures. The fast path never throws; everything that runs before the workers start
// (EAL, pools, ports) or on the main lcore reports problems with this exception, whose message is one line that
// names the object and the cause, ready to print.

#include <stdexcept>
#include <string>

namespace esw::dp {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace esw::dp
