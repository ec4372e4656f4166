#include "exec/work_pool.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "core/cancel.h"
#include "core/error.h"
#include "exec/core_budget.h"

namespace llmerge {

int default_thread_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void WorkPool::run(std::size_t count, const std::function<ItemFn()>& make_worker) {
  const int threads = std::max(1, options_.threads > 0 ? options_.threads : default_thread_count());
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  const auto stop_and_join = [&] {
    failed_.store(true);
    for (auto& t : pool)
      if (t.joinable()) t.join();
  };
  try {
    for (int i = 0; i < threads; ++i)
      pool.emplace_back([this, count, &make_worker] { work(count, make_worker); });
  } catch (const std::exception& e) {
    // Out of threads (EAGAIN) or memory: stop the workers already started
    // and join them; destroying a joinable std::thread would abort.
    const std::size_t started = pool.size();
    stop_and_join();
    throw Error(ErrorKind::io,
                fmt::format("cannot start {} worker threads ({} started): {}; use fewer --threads",
                            threads, started, e.what()));
  }
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(options_.progress_interval_s));
  try {
    std::unique_lock lock(mutex_);
    while (running_ > 0 || started_ < threads) {
      done_cv_.wait_for(lock, interval);
      if (running_ == 0 && started_ == threads) break;
      lock.unlock();
      if (options_.progress) options_.progress();
      lock.lock();
    }
  } catch (...) {
    stop_and_join();
    throw;
  }
  for (auto& t : pool)
    t.join();
  if (error_) std::rethrow_exception(error_);
  if (options_.progress) options_.progress();
}

void WorkPool::check_stop() const {
  throw_if_cancelled();
  if (failed_.load(std::memory_order_relaxed))
    throw Error(ErrorKind::interrupted,
                fmt::format("stopped: another part of {} failed", options_.activity));
}

void WorkPool::work(std::size_t count, const std::function<ItemFn()>& make_worker) {
  {
    std::lock_guard lock(mutex_);
    ++started_;
    ++running_;
  }
  CancelScope cancel_scope(options_.cancel);
  try {
    const ItemFn item = make_worker();
    for (;;) {
      if (failed_.load()) break;
      const std::size_t i = next_.fetch_add(1);
      if (i >= count) break;
      CoreSlot slot(CoreBudget::process());
      item(i);
    }
  } catch (const std::bad_alloc&) {
    record(std::make_exception_ptr(
        Error(ErrorKind::io,
              fmt::format("out of memory during {}; use fewer --threads", options_.activity))));
  } catch (...) {
    record(std::current_exception());
  }
  std::lock_guard lock(mutex_);
  --running_;
  done_cv_.notify_all();
}

void WorkPool::record(std::exception_ptr e) {
  std::lock_guard lock(mutex_);
  if (!error_) error_ = std::move(e);
  failed_.store(true);
}

}  // namespace llmerge
