// Merge models through llmerge's public C++ API: minimal_merge CONFIG OUT.
// Build it against an installed llmerge with examples/CMakeLists.txt
// (find_package(llmerge)); docs/api.md walks through it.
#include <cstdio>

#include <llmerge/llmerge.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CONFIG.yaml OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const llmerge::Config config = llmerge::Config::load(argv[1]);
    const llmerge::Plan plan = llmerge::plan(config);  // checks everything, writes nothing
    std::printf("%s", plan.describe().c_str());

    llmerge::RunOptions options;
    options.progress = [](const llmerge::Progress& p) {
      std::fprintf(stderr, "\r%zu/%zu tensors", p.tensors_done, p.tensors_total);
    };
    const llmerge::RunResult result = llmerge::run(plan, argv[2], options);
    std::printf("\nwrote %s: %zu tensors in %.2f s\n", result.output.c_str(), result.tensors,
                result.seconds);
    return 0;
  } catch (const llmerge::Error& e) {
    for (const llmerge::Problem& p : e.problems())
      std::fprintf(stderr, "error: %s\n", p.to_string().c_str());
    return llmerge::exit_code_for(e.kind());
  }
}
