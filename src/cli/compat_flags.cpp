#include "compat_flags.h"

#include <cstdlib>

#include <fmt/core.h>

namespace llmerge::cli {

struct CompatFlag {
  const char* name;  // without "--"
  bool takes_value;  // else a --x/--no-x flag
  const char* why;   // why it has no effect here (nullptr: handled in apply())
};

namespace {

// mergekit/options.py, in its order. Booleans get --no-X as in mergekit.
constexpr CompatFlag k_flags[] = {
    {"transformers-cache", true, nullptr},
    {"lora-merge-cache", true, "llmerge does not apply LoRA adapters, so nothing is cached"},
    {"lora-merge-dtype", true, "llmerge does not apply LoRA adapters"},
    {"cuda", false, "llmerge computes on the CPU; there is no CUDA device to use"},
    {"device", true, nullptr},
    {"low-cpu-memory", false, "llmerge streams tensors in chunks, so memory stays bounded anyway"},
    {"clone-tensors", false,
     "every output tensor is written from its own buffer; none share storage"},
    {"trust-remote-code", false, "llmerge never runs a model's code; there is nothing to trust"},
    {"lazy-unpickle", false, "llmerge reads only safetensors, which are never unpickled"},
    {"safe-serialization", false, "llmerge always writes safetensors (never pytorch .bin pickles)"},
    {"read-to-gpu", false, "llmerge uses no GPU"},
    {"multi-gpu", false, "llmerge uses no GPU; -j sets its CPU threads"},
    {"gpu-rich", false, "llmerge uses no GPU; -j sets its CPU threads"},
    {"async-write", false, "llmerge has no separate writer pool; -j sets all its threads"},
    {"write-threads", true, "llmerge has no separate writer pool; -j sets all its threads"},
    {"unsafe-truncate-embeddings", false,
     "embeddings of different sizes are cut to a common size anyway, or aligned to the "
     "output vocabulary with tokenizer_source (docs/tokenizers.md)"},
};

}  // namespace

void CompatFlags::add(CLI::App& app) {
  given_.reserve(std::size(k_flags));
  for (const CompatFlag& f : k_flags) {
    Given& g = given_.emplace_back();
    g.flag = &f;
    const std::string help = f.why ? fmt::format("mergekit's; no effect: {}", f.why) : "";
    if (f.takes_value) {
      const std::string h = f.why ? help
                            : std::string(f.name) == "device"
                                ? "mergekit's; llmerge computes on the CPU (cpu and auto accepted)"
                                : "mergekit's: the Hugging Face hub cache that models are looked "
                                  "up in (sets HF_HUB_CACHE)";
      g.option = app.add_option(fmt::format("--{}", f.name), g.text, h)->group("mergekit flags");
    } else {
      g.option = app.add_flag(fmt::format("--{},!--no-{}", f.name, f.name), g.value, help)
                     ->group("mergekit flags");
    }
  }
  verbose_ = app.add_flag("-v,--verbose", verbosity_,
                          "mergekit's log level (-v, -vv); no effect: llmerge always prints its "
                          "notes and progress (--quiet hides them)")
                 ->group("mergekit flags");
}

std::vector<std::string> CompatFlags::apply() const {
  std::vector<std::string> notes;
  for (const Given& g : given_) {
    if (g.option->count() == 0) continue;
    const std::string name = g.flag->name;
    if (name == "transformers-cache") {
      // mergekit passes it to huggingface_hub as cache_dir: the hub cache
      // itself (the folder of models--org--name), which HF_HUB_CACHE names.
      // The CLI is still single-threaded here, so setenv is safe.
      ::setenv("HF_HUB_CACHE", g.text.c_str(), 1);
      continue;
    }
    if (name == "device") {
      if (g.text == "cpu") continue;  // what llmerge does
      notes.push_back(
          fmt::format("--device {} has no effect: llmerge computes on the CPU", g.text));
      continue;
    }
    const bool negated = !g.flag->takes_value && !g.value;
    notes.push_back(
        fmt::format("--{}{} has no effect: {}", negated ? "no-" : "", name, g.flag->why));
  }
  if (verbose_->count() > 0) {
    notes.push_back(fmt::format(
        "-{} has no effect: llmerge always prints its notes and progress (--quiet hides them)",
        std::string(static_cast<std::size_t>(verbosity_), 'v')));
  }
  return notes;
}

void print_notes(const std::vector<std::string>& notes) {
  for (const auto& note : notes)
    fmt::print(stderr, "note: {}\n", note);
}

}  // namespace llmerge::cli
