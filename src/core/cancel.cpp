#include "core/cancel.h"

#include "core/error.h"

namespace llmerge {

namespace {
thread_local const CancelToken* t_token = nullptr;
}  // namespace

CancelScope::CancelScope(const CancelToken& token) : previous_(t_token) {
  t_token = &token;
}

CancelScope::~CancelScope() {
  t_token = previous_;
}

const CancelToken* current_cancel_token() noexcept {
  return t_token;
}

void throw_if_cancelled() {
  if (t_token && t_token->cancelled()) {
    throw Error(ErrorKind::interrupted, "interrupted; no output was written");
  }
}

}  // namespace llmerge
