#include "analysis/compare_engine.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <set>

#include <fmt/core.h>

#include "core/cancel.h"
#include "core/error.h"
#include "exec/sources.h"
#include "exec/work_pool.h"
#include "io/model.h"
#include "merge/method.h"
#include "merge/methods/rank_select.h"

namespace llmerge {

namespace {

// Odd keys RankSelect may keep to skip its second pass (as many as a chunk).
constexpr std::size_t k_odd_keys_max = 1 << 16;
constexpr std::size_t k_skipped_named_max = 50;

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// "model.layers.7.mlp.up_proj.weight" with prefix "model.layers" -> (7, "mlp.up_proj.weight").
std::optional<std::pair<std::int64_t, std::string>> split_layer(const std::string& name,
                                                                const std::string& prefix) {
  if (prefix.empty() || name.size() <= prefix.size() + 1 || !name.starts_with(prefix) ||
      name[prefix.size()] != '.') {
    return std::nullopt;
  }
  std::size_t i = prefix.size() + 1;
  std::int64_t layer = 0;
  const std::size_t digits = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i - digits < 9)
    layer = layer * 10 + (name[i++] - '0');
  if (i == digits || i >= name.size() || name[i] != '.') return std::nullopt;
  return std::pair{layer, name.substr(i + 1)};
}

// FNV-1a of a tensor suffix: the sketch's per-module seed.
std::uint64_t suffix_seed(const std::string& suffix) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : suffix)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

ComparedModel summary(const Model& m, const std::string& name) {
  ComparedModel s;
  s.name = name;
  s.path = m.path().string();
  s.layers = m.layers().count;
  s.tensors = m.tensor_count();
  s.parameters = m.parameter_count();
  // The logical dtype (a quantized weight's scales'), the most common one; a
  // tie goes to the first in DType order.
  std::map<DType, std::size_t> counts;
  for (const auto& tensor : m.tensor_names())
    ++counts[m.find(tensor)->dtype()];
  std::pair<DType, std::size_t> top{DType::F32, 0};
  for (const auto& [dtype, count] : counts)
    if (count > top.second) top = {dtype, count};
  s.dtype = std::string(dtype_torch_name(top.first));
  return s;
}

// One tensor name in a unit: where each model (and the base) has it.
struct Item {
  std::string name;
  std::int64_t layer = -1;
  std::string suffix;                  // name inside the layer, for the sketch's hash
  std::vector<const TensorRef*> refs;  // per model; nullptr where absent
  const TensorRef* base = nullptr;
  bool shared = false;  // compared (every model and the base, same shape, float)
};

struct Unit {
  std::int64_t layer = -1;  // -1: one tensor outside the layers
  std::vector<Item> items;  // by name
};

struct UnitResult {
  std::vector<ComparedTensor> tensors;
  std::vector<std::vector<double>> sketches;  // per model; empty where the model lacks the layer
};

PlannedInput planned_input(std::size_t model, const std::string& name, const TensorRef& ref) {
  PlannedInput in;
  in.model = model;
  in.tensor = name;
  in.ref = ref;
  in.shape = ref.shape();
  in.source = ref.quant ? SourceKind::mlx_dequantize : SourceKind::dense;
  return in;
}

std::int64_t numel_of(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

class Engine {
 public:
  Engine(const std::vector<std::string>& names, const CompareSettings& settings)
      : settings_(settings) {
    if (names.size() < 2) {
      throw Error(ErrorKind::config,
                  fmt::format("compare needs at least two models (got {})", names.size()));
    }
    if (!(settings.density > 0 && settings.density <= 1)) {
      throw Error(ErrorKind::config,
                  fmt::format("--density must be in (0, 1] (got {})", settings.density));
    }
    chunk_ = std::max<std::int64_t>(settings.chunk_elements, 1);
    chunk_ = (chunk_ + k_reduce_block - 1) / k_reduce_block * k_reduce_block;
    for (const auto& n : names)
      models_.push_back(Model::open(resolve_model_reference(n, settings.base_dir), n));
    if (!settings.base.empty()) {
      base_.emplace(
          Model::open(resolve_model_reference(settings.base, settings.base_dir), settings.base));
    }
  }

  CompareData run() {
    CompareData data;
    data.density = settings_.density;
    for (std::size_t m = 0; m < models_.size(); ++m)
      data.models.push_back(summary(models_[m], models_[m].display_name()));
    if (base_) data.base = summary(*base_, base_->display_name());
    for (std::size_t a = 0; a < models_.size(); ++a)
      for (std::size_t b = a + 1; b < models_.size(); ++b)
        data.pairs.emplace_back(a, b);
    pairs_ = data.pairs;
    build_units(data);
    results_.resize(units_.size());
    execute();
    collect(data);
    return data;
  }

 private:
  void skip(CompareData& data, const std::string& name, std::string reason) {
    ++data.skipped_count;
    if (data.skipped_first.size() < k_skipped_named_max)
      data.skipped_first.emplace_back(name, std::move(reason));
  }

  void build_units(CompareData& data) {
    std::set<std::string> names;
    for (const auto& m : models_)
      for (auto& n : m.tensor_names())
        names.insert(std::move(n));
    std::map<std::int64_t, Unit> layers;
    for (const std::string& name : names) {
      Item item;
      item.name = name;
      item.refs.resize(models_.size());
      for (std::size_t m = 0; m < models_.size(); ++m) {
        item.refs[m] = models_[m].find(name);
        if (item.refs[m] && item.layer < 0) {
          if (auto split = split_layer(name, models_[m].layers().prefix)) {
            item.layer = split->first;
            item.suffix = split->second;
          }
        }
      }
      if (base_) item.base = base_->find(name);
      item.shared = true;
      std::string reason;
      for (std::size_t m = 0; m < models_.size() && item.shared; ++m) {
        if (!item.refs[m]) {
          item.shared = false;
          reason = fmt::format("absent from model {} ({})", m, models_[m].display_name());
        }
      }
      if (item.shared && base_ && !item.base) {
        item.shared = false;
        reason = fmt::format("absent from the base ({})", base_->display_name());
      }
      const TensorRef* first = item.refs[0];  // non-null while item.shared
      for (std::size_t m = 0; m < models_.size() && item.shared; ++m) {
        const TensorRef* r = item.refs[m];
        if (!dtype_is_mergeable_float(r->dtype())) {
          item.shared = false;
          reason = fmt::format("not a float tensor ({}) in model {}", dtype_name(r->dtype()), m);
        } else if (r->shape() != first->shape()) {
          item.shared = false;
          reason = fmt::format("shape {} in model 0, {} in model {}", shape_text(first->shape()),
                               shape_text(r->shape()), m);
        }
      }
      if (item.shared && item.base && !dtype_is_mergeable_float(item.base->dtype())) {
        item.shared = false;
        reason = fmt::format("not a float tensor ({}) in the base", dtype_name(item.base->dtype()));
      } else if (item.shared && item.base && item.base->shape() != first->shape()) {
        item.shared = false;
        reason = fmt::format("shape {} in the models, {} in the base", shape_text(first->shape()),
                             shape_text(item.base->shape()));
      }
      if (!item.shared) skip(data, name, reason);
      if (item.layer >= 0) {
        Unit& u = layers[item.layer];
        u.layer = item.layer;
        u.items.push_back(std::move(item));
      } else if (item.shared) {
        Unit u;
        u.items.push_back(std::move(item));
        units_.push_back(std::move(u));
      }
    }
    for (auto& [layer, u] : layers)
      units_.push_back(std::move(u));
    for (const Unit& u : units_)
      tensors_total_ += u.items.size();
    bool any = false;
    for (const Unit& u : units_)
      for (const Item& it : u.items)
        any = any || it.shared;
    if (!any) {
      throw Error(ErrorKind::shape,
                  "the models share no tensor of the same shape: nothing to compare (are they "
                  "of the same architecture?)");
    }
  }

  void execute() {
    WorkPoolOptions options;
    options.threads = settings_.threads;
    options.cancel = settings_.cancel;
    options.progress_interval_s = 0.2;
    options.activity = "the comparison";
    if (settings_.progress)
      options.progress = [this] { settings_.progress(tensors_done_.load(), tensors_total_); };
    pool_.emplace(std::move(options));
    pool_->run(units_.size(), [this]() -> WorkPool::ItemFn {
      auto s = std::make_shared<Scratch>(chunk_, models_.size() + 1);
      return [this, s](std::size_t i) { run_unit(units_[i], results_[i], *s); };
    });
  }

  void check_stop() const { pool_->check_stop(); }

  struct Scratch {
    Scratch(std::int64_t chunk, std::size_t buffers) : source(chunk), x(buffers), kept(buffers) {
      for (auto& b : x)
        b.resize(static_cast<std::size_t>(chunk));
      for (auto& k : kept)
        k.resize(static_cast<std::size_t>(chunk));
    }
    SourceScratch source;
    std::vector<std::vector<float>> x;             // per model, the base last
    std::vector<std::vector<unsigned char>> kept;  // per model: kept at the density
  };

  // Only matrices go into a layer's sketch: norm weights (near 1 in every
  // layer of every model) would make unrelated layers look alike.
  static bool sketched(const TensorRef& r) {
    return dtype_is_mergeable_float(r.dtype()) && r.shape().size() >= 2;
  }

  void sketch_chunk(std::vector<double>& sketch, std::uint64_t seed, std::int64_t begin,
                    const float* x, std::int64_t n) const {
    // Fibonacci hashing of (module seed + position): one multiply per element;
    // the top 12 bits pick the bucket, the next bit the sign.
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint64_t h =
          (seed + static_cast<std::uint64_t>(begin + i)) * 0x9E3779B97F4A7C15ull;
      const double v = x[i];
      sketch[h >> 52] += ((h >> 51) & 1) ? v : -v;
    }
  }

  void run_unit(const Unit& unit, UnitResult& out, Scratch& s) {
    if (unit.layer >= 0) {
      out.sketches.resize(models_.size());
      for (std::size_t m = 0; m < models_.size(); ++m)
        if (unit.layer < models_[m].layers().count) out.sketches[m].assign(k_sketch_buckets, 0.0);
    }
    for (const Item& item : unit.items) {
      if (item.shared) {
        out.tensors.push_back(compare_tensor(item, out, s));
      } else if (unit.layer >= 0) {
        sketch_only(item, out, s);
      }
      tensors_done_.fetch_add(1);
    }
  }

  // A layer tensor that is not compared still belongs to its layer's sketch.
  void sketch_only(const Item& item, UnitResult& out, Scratch& s) {
    const std::uint64_t seed = suffix_seed(item.suffix);
    for (std::size_t m = 0; m < models_.size(); ++m) {
      const TensorRef* r = item.refs[m];
      if (!r || !sketched(*r) || out.sketches[m].empty()) continue;
      const PlannedInput in = planned_input(m, item.name, *r);
      const auto source = make_source(in);
      const std::int64_t numel = numel_of(in.shape);
      for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
        check_stop();
        const std::int64_t n = std::min(chunk_, numel - begin);
        source->read(begin, n, s.x[0].data(), s.source);
        sketch_chunk(out.sketches[m], seed, begin, s.x[0].data(), n);
      }
    }
  }

  ComparedTensor compare_tensor(const Item& item, UnitResult& out, Scratch& s) {
    const std::size_t models = models_.size();
    const bool with_base = item.base != nullptr;
    std::vector<PlannedInput> inputs;
    for (std::size_t m = 0; m < models; ++m)
      inputs.push_back(planned_input(m, item.name, *item.refs[m]));
    if (with_base) inputs.push_back(planned_input(models, item.name, *item.base));
    std::vector<std::unique_ptr<TensorSource>> sources;
    for (const auto& in : inputs)
      sources.push_back(make_source(in));

    ComparedTensor t;
    t.name = item.name;
    t.layer = item.layer;
    t.kind = module_kind(item.name);
    t.numel = numel_of(inputs[0].shape);
    t.pairs.assign(pairs_.size(), PairSums{});
    const std::int64_t numel = t.numel;
    const std::uint64_t seed = suffix_seed(item.suffix);

    // mergekit 0.1.5's magnitude(): k = max(1, floor(density * numel)), as ties.cpp.
    const std::int64_t keep =
        std::max<std::int64_t>(1, static_cast<std::int64_t>(settings_.density * numel));
    const bool keep_all = keep >= numel;
    std::vector<RankSelect> select;
    if (with_base && !keep_all) {
      for (std::size_t m = 0; m < models; ++m)
        select.emplace_back(std::vector<std::int64_t>{numel - keep}, k_odd_keys_max, 31, numel);
    }

    auto read_all = [&](std::int64_t begin, std::int64_t n) {
      check_stop();
      for (std::size_t i = 0; i < sources.size(); ++i)
        sources[i]->read(begin, n, s.x[i].data(), s.source);
    };
    auto to_task_vectors = [&](std::int64_t n) {
      const float* b = s.x[models].data();
      for (std::size_t m = 0; m < models; ++m) {
        float* x = s.x[m].data();
        for (std::int64_t i = 0; i < n; ++i)
          x[i] -= b[i];
      }
    };

    // Pass 0: weights, sketches, task vectors, and the cut-off's first digit.
    for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
      const std::int64_t n = std::min(chunk_, numel - begin);
      read_all(begin, n);
      for (std::size_t p = 0; p < pairs_.size(); ++p) {
        const float* a = s.x[pairs_[p].first].data();
        const float* b = s.x[pairs_[p].second].data();
        PairSums& ps = t.pairs[p];
        // Summed per k_reduce_block, then blocks in order: the same whatever the chunk size.
        for (std::int64_t b0 = 0; b0 < n; b0 += k_reduce_block) {
          const std::int64_t b1 = std::min(n, b0 + k_reduce_block);
          double dot = 0, diff2 = 0, na = 0, nb = 0;
          for (std::int64_t i = b0; i < b1; ++i) {
            const double va = a[i], vb = b[i];
            dot += va * vb;
            diff2 += (va - vb) * (va - vb);
            na += va * va;
            nb += vb * vb;
          }
          ps.dot += dot;
          ps.diff2 += diff2;
          ps.norm2_a += na;
          ps.norm2_b += nb;
        }
      }
      if (item.layer >= 0 && sketched(*item.refs[0])) {
        for (std::size_t m = 0; m < models; ++m)
          if (!out.sketches[m].empty())
            sketch_chunk(out.sketches[m], seed, begin, s.x[m].data(), n);
      }
      if (!with_base) continue;
      to_task_vectors(n);
      for (std::size_t p = 0; p < pairs_.size(); ++p) {
        const float* a = s.x[pairs_[p].first].data();
        const float* b = s.x[pairs_[p].second].data();
        PairSums& ps = t.pairs[p];
        std::int64_t same = 0, both = 0, opposite = 0;
        for (std::int64_t b0 = 0; b0 < n; b0 += k_reduce_block) {
          const std::int64_t b1 = std::min(n, b0 + k_reduce_block);
          double dot = 0, na = 0, nb = 0;
          for (std::int64_t i = b0; i < b1; ++i) {
            const double va = a[i], vb = b[i];
            dot += va * vb;
            na += va * va;
            nb += vb * vb;
            const bool nz = a[i] != 0 && b[i] != 0;
            const bool agree = (a[i] > 0) == (b[i] > 0);
            both += nz;
            same += nz && agree;
            opposite += nz && !agree;
          }
          ps.task_dot += dot;
          ps.task_norm2_a += na;
          ps.task_norm2_b += nb;
        }
        ps.sign_same += same;
        ps.both_nonzero += both;
        if (keep_all) {
          ps.kept_both += n;
          ps.kept_opposite += opposite;
        }
      }
      for (std::size_t m = 0; m < select.size(); ++m)
        select[m].add_all(0, s.x[m].data(), static_cast<std::size_t>(n), magnitude_key);
    }
    if (with_base) {
      for (auto& ps : t.pairs)
        ps.kept_a += keep_all ? numel : keep;
    }
    if (select.empty()) return t;

    // Pass 1 when a cut-off needs its low digit; then the counting pass.
    bool low_pass = false;
    for (auto& sel : select) {
      sel.end_pass(0);
      low_pass = low_pass || !sel.done();
    }
    if (low_pass) {
      for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
        const std::int64_t n = std::min(chunk_, numel - begin);
        read_all(begin, n);
        to_task_vectors(n);
        for (std::size_t m = 0; m < models; ++m)
          if (!select[m].done())
            select[m].add_all(1, s.x[m].data(), static_cast<std::size_t>(n), magnitude_key);
      }
      for (auto& sel : select)
        if (!sel.done()) sel.end_pass(1);
    }
    std::vector<std::uint32_t> threshold(models);
    std::vector<std::int64_t> ties_left(models);
    for (std::size_t m = 0; m < models; ++m) {
      const RankSelect::Result& r = select[m].result(0);
      threshold[m] = r.key;
      ties_left[m] = keep - (numel - r.below - r.equal);
    }
    for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
      const std::int64_t n = std::min(chunk_, numel - begin);
      read_all(begin, n);
      to_task_vectors(n);
      for (std::size_t m = 0; m < models; ++m) {
        const float* x = s.x[m].data();
        unsigned char* kept = s.kept[m].data();
        for (std::int64_t i = 0; i < n; ++i) {
          const std::uint32_t key = magnitude_key(x[i]);
          bool k = key > threshold[m];
          if (key == threshold[m] && ties_left[m] > 0) {
            k = true;
            --ties_left[m];
          }
          kept[i] = k;
        }
      }
      for (std::size_t p = 0; p < pairs_.size(); ++p) {
        const std::size_t ia = pairs_[p].first, ib = pairs_[p].second;
        const float* a = s.x[ia].data();
        const float* b = s.x[ib].data();
        const unsigned char* ka = s.kept[ia].data();
        const unsigned char* kb = s.kept[ib].data();
        std::int64_t both = 0, opposite = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const bool kk = ka[i] && kb[i];
          both += kk;
          opposite += kk && ((a[i] > 0 && b[i] < 0) || (a[i] < 0 && b[i] > 0));
        }
        t.pairs[p].kept_both += both;
        t.pairs[p].kept_opposite += opposite;
      }
    }
    return t;
  }

  void collect(CompareData& data) {
    const std::size_t np = pairs_.size();
    data.total.assign(np, PairSums{});
    std::vector<ComparedTensor> all;
    for (auto& r : results_)
      for (auto& t : r.tensors)
        all.push_back(std::move(t));
    std::sort(all.begin(), all.end(),
              [](const ComparedTensor& a, const ComparedTensor& b) { return a.name < b.name; });
    for (const ComparedTensor& t : all) {
      data.elements += t.numel;
      auto& kind = data.modules[static_cast<std::size_t>(t.kind)];
      if (kind.empty()) kind.assign(np, PairSums{});
      std::vector<PairSums>* layer = nullptr;
      if (t.layer >= 0) {
        auto [it, inserted] = data.layers.try_emplace(t.layer, np, PairSums{});
        layer = &it->second;
      }
      for (std::size_t p = 0; p < np; ++p) {
        data.total[p].add(t.pairs[p]);
        kind[p].add(t.pairs[p]);
        if (layer) (*layer)[p].add(t.pairs[p]);
      }
    }
    data.tensors = std::move(all);
    data.sketches.assign(models_.size(), {});
    for (std::size_t m = 0; m < models_.size(); ++m)
      data.sketches[m].resize(static_cast<std::size_t>(models_[m].layers().count));
    for (std::size_t u = 0; u < units_.size(); ++u) {
      if (units_[u].layer < 0) continue;
      for (std::size_t m = 0; m < models_.size(); ++m) {
        auto& sk = results_[u].sketches[m];
        if (!sk.empty() && units_[u].layer < models_[m].layers().count)
          data.sketches[m][static_cast<std::size_t>(units_[u].layer)] = std::move(sk);
      }
    }
  }

  CompareSettings settings_;
  std::int64_t chunk_ = k_reduce_block;
  std::vector<Model> models_;
  std::optional<Model> base_;
  std::vector<std::pair<std::size_t, std::size_t>> pairs_;
  std::vector<Unit> units_;
  std::vector<UnitResult> results_;
  std::size_t tensors_total_ = 0;
  std::optional<WorkPool> pool_;
  std::atomic<std::size_t> tensors_done_{0};
};

}  // namespace

CompareData run_compare(const std::vector<std::string>& models, const CompareSettings& settings) {
  Engine engine(models, settings);
  return engine.run();
}

}  // namespace llmerge
