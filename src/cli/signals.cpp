#include "signals.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "command.h"

namespace llmerge::cli {

namespace {

volatile std::sig_atomic_t g_first_signal = 0;
// The flag of this process's run (run_cancel_token()), set before the handlers are installed.
std::atomic<bool>* g_cancel_flag = nullptr;

void say(const char* text, std::size_t n) noexcept {
  const ssize_t ignored = ::write(STDERR_FILENO, text, n);
  (void)ignored;
}

extern "C" void on_grace_expired(int) {
  ::_exit(128 + SIGTERM);
}

extern "C" void on_stop_signal(int signum) {
  const int saved_errno = errno;
  if (g_first_signal == 0) {
    g_first_signal = signum;
    g_cancel_flag->store(true, std::memory_order_relaxed);
    if (signum == SIGTERM) ::alarm(k_term_grace_s);
  } else if (signum == SIGTERM) {
    ::_exit(128 + SIGTERM);
  } else if (signum == SIGINT) {
    static constexpr char k_message[] =
        "\nllmerge: stopping; removing the temporary output first\n";
    say(k_message, sizeof k_message - 1);
  }
  errno = saved_errno;
}

void handle(int signum, void (*handler)(int)) noexcept {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls resume; loops check the cancel flag
  ::sigaction(signum, &action, nullptr);
}

}  // namespace

void ensure_standard_fds() noexcept {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int opened = ::open("/dev/null", O_RDWR);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

void install_signal_handlers() noexcept {
  g_cancel_flag = run_cancel_token().flag();
  for (int signum : {SIGINT, SIGHUP, SIGPIPE, SIGTERM})
    handle(signum, on_stop_signal);
  handle(SIGALRM, on_grace_expired);
  // Past a file size limit (ulimit -f) a write should fail with EFBIG, which
  // the writer reports and cleans up after, rather than kill the process.
  std::signal(SIGXFSZ, SIG_IGN);
}

int received_signal() noexcept {
  return g_first_signal;
}

int interrupted_exit_code() noexcept {
  return 128 + (g_first_signal != 0 ? static_cast<int>(g_first_signal) : SIGINT);
}

void print_best_effort(std::FILE* out, std::string_view text) noexcept {
  if (std::fwrite(text.data(), 1, text.size(), out) != text.size() || std::fflush(out) != 0) {
    std::clearerr(out);
  }
}

}  // namespace llmerge::cli
