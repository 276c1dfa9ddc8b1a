// Trained parameters and their weight-decay groups (see param_groups.h).
#include "train/param_groups.h"

#include <set>

#include "util/error.h"

namespace c3::train {
namespace {

std::set<std::string> split_set(const std::string& s) {
  std::set<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.insert(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

}  // namespace

ParamGroups param_groups(cascade::C3Model& m, const std::string& freeze, bool decay_embeddings) {
  const std::set<std::string> frozen = split_set(freeze);
  for (const auto& f : frozen)
    C3_CHECK(f == "encoder" || f == "decoder" || f == "embeddings" || f == "queries" ||
                 f == "projector",
             "--freeze: unknown part '{}'; use encoder, decoder, embeddings, queries, projector", f);
  ParamGroups s;
  for (auto& p : m->named_parameters()) {
    const std::string& name = p.key();
    at::Tensor t = p.value();
    const bool is_q = name.find("model.Q.") != std::string::npos;
    const bool is_proj = name.find("mm_projector") != std::string::npos;
    const bool is_emb = name.find("embed_tokens") != std::string::npos ||
                        name.find("lm_head") != std::string::npos;
    bool frozen_here = (is_q && frozen.count("queries")) ||
                       (is_proj && frozen.count("projector")) ||
                       (is_emb && frozen.count("embeddings"));
    if (!is_q && !is_proj) {
      if (name.rfind("encoder.", 0) == 0 && frozen.count("encoder")) frozen_here = true;
      if (name.rfind("decoder.", 0) == 0 && frozen.count("decoder")) frozen_here = true;
    }
    t.set_requires_grad(!frozen_here);
    if (frozen_here) continue;
    s.all.push_back(t);
    const bool decay = t.dim() >= 2 && !is_q && (!is_emb || decay_embeddings);
    (decay ? s.decay : s.no_decay).push_back(t);
  }
  return s;
}

}  // namespace c3::train
