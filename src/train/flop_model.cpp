// FLOP count of one training passage (see flop_model.h).
#include "train/flop_model.h"

#include <algorithm>

namespace c3::train {

FlopModel FlopModel::of(cascade::C3Model& m) {
  FlopModel f;
  for (auto& p : m->encoder->model->layers->named_parameters()) f.enc_layer_params += p.value().numel();
  for (auto& p : m->decoder->model->layers->named_parameters()) f.dec_layer_params += p.value().numel();
  f.enc_layers = m->config.encoder.num_hidden_layers;
  f.dec_layers = m->config.decoder.num_hidden_layers;
  f.enc_c = m->config.encoder.hidden_size;
  f.dec_c = m->config.decoder.hidden_size;
  f.vocab = m->config.decoder.vocab_size;
  f.L = m->latent_len();
  f.P = static_cast<int64_t>(m->prompt_ids().size());
  return f;
}

double FlopModel::passage(int64_t T) const {
  const double te = T + L + 2, td = P + T + 1;  // encoder and decoder sequence lengths
  double f = 2.0 * (enc_layer_params * te + dec_layer_params * td) + 2.0 * dec_c * vocab * (T + 1);
  f += 2.0 * enc_layers * enc_c * te * te + 2.0 * dec_layers * dec_c * td * td;  // causal attn
  return 3.0 * f;
}

double FlopModel::lm_passage(int64_t T) const {
  const double t = std::max<int64_t>(0, T - 1);
  double f = 2.0 * (enc_layer_params + dec_layer_params) * t + 2.0 * (enc_c + dec_c) * vocab * t;
  f += 2.0 * (enc_layers * enc_c + dec_layers * dec_c) * t * t;  // causal attention
  return 3.0 * f;
}

}  // namespace c3::train
