// The streaming executor: runs a MergePlan, chunk by chunk, into a ModelWriter.
//
// Each worker thread takes the next whole output tensor (an atomic counter)
// and streams it through its method in chunks: read the inputs' bytes
// (pread), convert to f32, run the method's statistics passes and then its
// output pass, convert to the output dtype (round to nearest even) and write
// at the tensor's offset. One tensor is always computed by one thread in chunk
// order, and reductions are summed per fixed block (merge/method.h), so the
// output bytes do not depend on the thread count or the chunk size. Memory is
// threads x (inputs + 2) chunk buffers, whatever the model size.
#pragma once

#include <cstdint>
#include <functional>

#include "core/cancel.h"
#include "exec/sink.h"
#include "exec/work_pool.h"  // default_thread_count
#include "plan/plan.h"

namespace llmerge {

struct ExecuteProgress {
  std::size_t tensors_done = 0;
  std::size_t tensors_total = 0;
  std::uint64_t bytes_done = 0;  // output bytes written
  std::uint64_t bytes_total = 0;
  double seconds = 0;
};

struct ExecuteOptions {
  int threads = 0;  // 0: all cores
  // Rounded up to a multiple of k_reduce_block. One block (256 KiB per f32
  // buffer) keeps a worker's buffers in L2: measured faster than 1 Mi.
  std::int64_t chunk_elements = k_reduce_block;
  std::uint64_t seed = 0;  // for random methods (DARE)
  // Called from the calling thread about every `progress_interval_s`, and once at the end.
  std::function<void(const ExecuteProgress&)> progress;
  double progress_interval_s = 0.5;
  CancelToken cancel;  // checked between chunks by every worker
};

// Writes every tensor of `plan` through the sinks that `sinks` opens for it.
// Workers hold a CoreBudget slot while they compute, so parallel runs share
// the cores. Rethrows the first worker error (Error(io) on a
// short read, Error(interrupted) on SIGINT); the caller's writer then removes
// its temporary output.
void execute_plan(const MergePlan& plan, OutputSinks& sinks, const ExecuteOptions& options);

}  // namespace llmerge
