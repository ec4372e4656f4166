// The options table (llmerge/options.h) and the one place option text is parsed.
#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <limits>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "api/internal.h"
#include "core/error.h"
#include "io/mlx_quant.h"
#include "output/model_writer.h"

namespace llmerge {

namespace {

using T = OptionType;
using S = OptionScope;

const std::vector<std::string> k_merge_commands{"run", "plan"};
const std::vector<std::string> k_write_commands{"run", "quantize", "moe", "fuse"};
const std::vector<std::string> k_all_commands{"run", "plan", "quantize", "moe", "fuse"};
const std::vector<std::string> k_moe_commands{"moe"};

std::vector<OptionInfo> build_table() {
  return {
      {"dtype",
       0,
       T::string,
       S::plan,
       "the config's",
       "compute/input dtype, overriding the config's `dtype`: bfloat16, float16 or float32",
       {},
       k_all_commands,
       {}},
      {"out_dtype",
       0,
       T::string,
       S::plan,
       "the config's",
       "saved dtype, overriding the config's `out_dtype`",
       {},
       k_merge_commands,
       {}},
      {"allow_crimes",
       0,
       T::boolean,
       S::plan,
       "false",
       "allow merging models of different architectures",
       {},
       k_merge_commands,
       {}},
      {"out_shard_size",
       0,
       T::string,
       S::plan,
       "5B",
       "largest output shard: 5B (mergekit's default), 500MB, 2GiB, ...",
       {},
       k_all_commands,
       {}},
      {"quantize",
       'q',
       T::boolean,
       S::plan,
       "false",
       "write MLX-quantized weights (as mlx_lm.convert -q)",
       {},
       k_all_commands,
       {}},
      {"q_bits",
       0,
       T::integer,
       S::plan,
       "4",
       "bits per quantized weight: 2, 3, 4, 5, 6 or 8 (setting it turns quantize on)",
       {},
       k_all_commands,
       {"bits"}},
      {"q_group_size",
       0,
       T::integer,
       S::plan,
       "64",
       "weights per quantization group: 32, 64 or 128 (setting it turns quantize on)",
       {},
       k_all_commands,
       {}},
      {"q_mode",
       0,
       T::choice,
       S::plan,
       "affine",
       "quantization mode; mxfp4, nvfp4 and mxfp8 are read, not yet written",
       {"affine", "mxfp4", "nvfp4", "mxfp8"},
       k_all_commands,
       {}},
      {"dequantize",
       'd',
       T::boolean,
       S::plan,
       "false",
       "write dense weights even when the inputs are MLX-quantized",
       {},
       k_all_commands,
       {}},
      {"base_dir",
       0,
       T::string,
       S::plan,
       "the current directory",
       "directory that relative model paths in the config resolve against",
       {},
       {},
       {}},
      {"allow_all_same",
       0,
       T::boolean,
       S::plan,
       "false",
       "moe: allow every expert to be the same model (useful only if you train afterwards)",
       {},
       k_moe_commands,
       {"i_understand_this_is_not_useful_without_training"}},
      {"gates",
       0,
       T::string,
       S::plan,
       "computed",
       "moe: a safetensors file of router vectors (python -m llmerge.moe_gates) for a prompt "
       "gate_mode",
       {},
       k_moe_commands,
       {}},
      {"gate_backend",
       0,
       T::choice,
       S::plan,
       "auto",
       "moe: what computes prompt gates: mlx (mlx-lm), torch (transformers) or auto (whichever "
       "is installed, mlx first)",
       {"auto", "mlx", "torch"},
       k_moe_commands,
       {}},
      {"threads",
       'j',
       T::integer,
       S::run,
       "all cores",
       "worker threads",
       {},
       k_all_commands,
       {"num_threads"}},
      {"chunk_elements",
       0,
       T::integer,
       S::run,
       "65536",
       "elements per streamed chunk (rounded up to a multiple of 65536)",
       {},
       k_all_commands,
       {}},
      {"random_seed",
       0,
       T::integer,
       S::run,
       "0",
       "seed of the random masks of DARE and DELLA, and of moe's random gates and noise",
       {},
       {"run", "plan", "moe"},
       {}},
      {"copy_tokenizer",
       0,
       T::boolean,
       S::run,
       "true",
       "copy the tokenizer files of the base (or first) model",
       {},
       k_write_commands,
       {}},
      {"write_model_card",
       0,
       T::boolean,
       S::run,
       "true",
       "write README.md and mergekit_config.yml",
       {},
       k_write_commands,
       {"model_card"}},  // the Python keyword the package's issue (#14) asked for
      {"force",
       0,
       T::boolean,
       S::run,
       "false",
       "replace an existing output folder",
       {},
       k_write_commands,
       {}},
      {"strict_mergekit",
       0,
       T::boolean,
       S::plan,
       "false",
       "refuse what mergekit would not read: per-slice merge_method, the seed's format",
       {},
       k_merge_commands,
       {}},
      {"intermediate_dir",
       0,
       T::string,
       S::recipe,
       "a temporary folder",
       "multi-stage recipes: where each named stage's model is written when stages are written "
       "(kept)",
       {},
       k_merge_commands,
       {}},
      {"lazy",
       0,
       T::boolean,
       S::recipe,
       "true",
       "multi-stage recipes: a stage whose model is already in --intermediate-dir is read from "
       "there, not merged again",
       {},
       k_merge_commands,
       {}},
      {"staged",
       0,
       T::boolean,
       S::recipe,
       "false",
       "multi-stage recipes: write every stage's model before the next stage reads it, as "
       "mergekit-multi does (else one pass when every stage is element-wise)",
       {},
       k_merge_commands,
       {}},
  };
}

std::string snake(std::string_view name) {
  std::string out(name);
  for (char& c : out)
    if (c == '-') c = '_';
  return out;
}

bool parse_bool(const OptionInfo& o, std::string_view v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw Error(ErrorKind::config,
              fmt::format("option '{}' takes true or false, not '{}'", o.name, v));
}

std::int64_t parse_int(const OptionInfo& o, std::string_view v, std::int64_t min,
                       std::int64_t max) {
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size()) {
    throw Error(ErrorKind::config,
                fmt::format("option '{}' takes a whole number, not '{}'", o.name, v));
  }
  if (out < min || out > max) {
    throw Error(ErrorKind::config, fmt::format("option '{}' must be between {} and {}, not {}",
                                               o.name, min, max, out));
  }
  return out;
}

int parse_one_of(const OptionInfo& o, std::string_view v, std::initializer_list<int> allowed) {
  const auto n = parse_int(o, v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max());
  if (std::find(allowed.begin(), allowed.end(), n) == allowed.end()) {
    throw Error(ErrorKind::config, fmt::format("option '{}' takes one of {}, not {}", o.name,
                                               fmt::join(allowed, ", "), n));
  }
  return static_cast<int>(n);
}

}  // namespace

const std::vector<OptionInfo>& option_table() {
  static const std::vector<OptionInfo> table = build_table();
  return table;
}

const OptionInfo* find_option(std::string_view name) {
  const std::string key = snake(name);
  for (const auto& o : option_table()) {
    if (o.name == key) return &o;
    for (const auto& a : o.aliases)
      if (snake(a) == key) return &o;
  }
  return nullptr;
}

void set_option(MergeOptions& options, std::string_view name, std::string_view value) {
  const OptionInfo* o = find_option(name);
  if (!o) throw Error(ErrorKind::config, fmt::format("unknown option '{}'", name));
  PlanOptions& p = options.plan;
  RunOptions& r = options.run;
  const std::string& n = o->name;
  const std::string v(value);
  if (o->type == T::choice &&
      std::find(o->choices.begin(), o->choices.end(), v) == o->choices.end()) {
    throw Error(ErrorKind::config, fmt::format("option '{}' takes one of {}, not '{}'", o->name,
                                               fmt::join(o->choices, ", "), v));
  }
  if (n == "dtype") {
    p.dtype = v;
  } else if (n == "out_dtype") {
    p.out_dtype = v;
  } else if (n == "allow_crimes") {
    p.allow_crimes = parse_bool(*o, v);
  } else if (n == "out_shard_size") {
    (void)parse_shard_size(v);  // validated now, with the option's name in the error
    p.out_shard_size = v;
  } else if (n == "quantize") {
    // A bit count also means "quantize, with these bits" (Python's quantize=4).
    if (v.size() == 1 && v[0] >= '2' && v[0] <= '8') {
      p.q_bits = parse_one_of(*o, v, {2, 3, 4, 5, 6, 8});
      p.quantize = true;
    } else {
      p.quantize = parse_bool(*o, v);
    }
  } else if (n == "q_bits") {
    p.q_bits = parse_one_of(*o, v, {2, 3, 4, 5, 6, 8});  // what mx.quantize takes (affine)
    p.quantize = true;
  } else if (n == "q_group_size") {
    p.q_group_size = parse_one_of(*o, v, {32, 64, 128});
    p.quantize = true;
  } else if (n == "q_mode") {
    // Refused here, before a plan is made or anything else is asked.
    if (v != "affine") {
      throw Error(ErrorKind::unsupported,
                  fmt::format("option 'q_mode': writing {} is not supported yet; llmerge reads "
                              "{} models but writes only affine quantization",
                              v, v));
    }
    p.q_mode = v;
    p.quantize = true;
  } else if (n == "dequantize") {
    p.dequantize = parse_bool(*o, v);
  } else if (n == "allow_all_same") {
    p.allow_all_same = parse_bool(*o, v);
  } else if (n == "gates") {
    p.gates = v;
  } else if (n == "gate_backend") {
    p.gate_backend = v;
  } else if (n == "base_dir") {
    p.base_dir = v;
  } else if (n == "threads") {
    r.threads = static_cast<int>(parse_int(*o, v, 0, 1024));
  } else if (n == "chunk_elements") {
    r.chunk_elements = parse_int(*o, v, 1, std::int64_t{1} << 40);
  } else if (n == "random_seed") {
    std::uint64_t seed = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seed);
    if (ec != std::errc() || end != v.data() + v.size()) {
      throw Error(ErrorKind::config,
                  fmt::format("option 'random_seed' takes a whole number >= 0, not '{}'", v));
    }
    r.random_seed = seed;
  } else if (n == "copy_tokenizer") {
    r.copy_tokenizer = parse_bool(*o, v);
  } else if (n == "write_model_card") {
    r.write_model_card = parse_bool(*o, v);
  } else if (n == "force") {
    r.force = parse_bool(*o, v);
  } else if (n == "strict_mergekit") {
    p.strict_mergekit = parse_bool(*o, v);
  } else if (n == "intermediate_dir") {
    r.intermediate_dir = v;
  } else if (n == "lazy") {
    r.lazy = parse_bool(*o, v);
  } else if (n == "staged") {
    r.staged = parse_bool(*o, v);
  } else {
    throw Error(ErrorKind::internal, fmt::format("option '{}' has no setter", n));
  }
}

std::string options_schema_json() {
  nlohmann::ordered_json props = nlohmann::ordered_json::object();
  for (const auto& o : option_table()) {
    nlohmann::ordered_json j;
    switch (o.type) {
      case T::boolean:
        j["type"] = "boolean";
        j["default"] = o.default_text == "true";
        break;
      case T::integer:
        j["type"] = "integer";
        break;
      case T::string:
        j["type"] = "string";
        break;
      case T::choice:
        j["type"] = "string";
        j["enum"] = o.choices;
        break;
    }
    j["description"] = o.help;
    j["x-default-text"] = o.default_text;
    j["x-scope"] = o.scope == S::plan ? "plan" : o.scope == S::run ? "run" : "recipe";
    j["x-commands"] = o.commands;
    std::string cli = "--" + o.name;
    for (char& c : cli)
      if (c == '_') c = '-';
    j["x-cli"] = cli;
    j["x-aliases"] = o.aliases;
    props[o.name] = std::move(j);
  }
  nlohmann::ordered_json schema = {
      {"$schema", "https://json-schema.org/draft/2020-12/schema"},
      {"title", "llmerge options"},
      {"type", "object"},
      {"additionalProperties", false},
      {"properties", std::move(props)},
  };
  return schema.dump(2);
}

// ------------------------------------------------------ to internal options

namespace api_detail {

PlanSettings to_internal(const PlanOptions& o) {
  PlanSettings out;
  auto dtype = [](const std::string& v, const char* name) -> std::optional<DType> {
    if (v.empty()) return std::nullopt;
    auto t = dtype_from_torch_name(v);
    if (!t) {
      throw Error(ErrorKind::config,
                  fmt::format("{} '{}' is not a dtype llmerge writes; use bfloat16, float16 or "
                              "float32",
                              name, v));
    }
    return t;
  };
  out.dtype = dtype(o.dtype, "dtype");
  out.out_dtype = dtype(o.out_dtype, "out_dtype");
  out.allow_crimes = o.allow_crimes;
  out.shard_size_max = parse_shard_size(o.out_shard_size);
  if (o.quantize) {
    out.quantize = QuantParams{o.q_bits, o.q_group_size, parse_quant_mode(o.q_mode)};
  }
  out.dequantize = o.dequantize;
  if (o.quantize && o.dequantize) {
    throw Error(ErrorKind::config, "quantize and dequantize exclude each other; give one");
  }
  out.base_dir = o.base_dir;
  out.strict_mergekit = o.strict_mergekit;
  return out;
}

}  // namespace api_detail

}  // namespace llmerge
