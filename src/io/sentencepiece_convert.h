// A sentencepiece model as a `tokenizers` tokenizer.json document, built the way
// transformers 5 builds a fast tokenizer from a tokenizer.model when it loads a
// folder that has no tokenizer.json (tokenization_utils_tokenizers.py,
// `_convert_from_sentencepiece`, and convert_slow_tokenizer.py,
// `SpmConverter.build_tokenizer_from_spm_proto`), which is what mergekit saves.
// The result encodes as sentencepiece's own `encode` does (checked by
// tools/golden/generate_tokenizers.py). docs/tokenizers.md §7 gives the rules:
//
//   model        BPE: vocab {piece: id}, merges from the NORMAL pieces (each
//                split of a piece into two NORMAL pieces, ranked by the piece's
//                score, high first, then id), unk_token unk_piece, fuse_unk,
//                byte_fallback, ignore_merges when there are USER_DEFINED
//                pieces. Unigram: vocab [[piece, score]], unk_id, byte_fallback.
//   normalizer   the spec's steps in sentencepiece's order: the precompiled
//                charsmap, extra-space removal (spaces only), " " -> "▁", and
//                for the legacy dummy prefix a doubled "▁" at the start.
//   pre_tokenizer Metaspace (prepend "▁", not split) with the dummy prefix;
//                USER_DEFINED pieces isolated by a Split, longest first.
//   post_processor bos / eos around each sequence as tokenizer_config.json's
//                add_bos_token / add_eos_token say.
//   decoder      "▁" -> " ", ByteFallback, Fuse, and Strip one leading space
//                with the dummy prefix.
//   added_tokens the UNKNOWN and CONTROL pieces (special, not normalized), then
//                tokenizer_config.json's `added_tokens_decoder` entries.
#pragma once

#include <nlohmann/json.hpp>

#include "io/sentencepiece.h"

namespace llmerge {

// `config` is the folder's tokenizer_config.json (an object, possibly empty):
// its `legacy` (default true) picks the dummy-prefix scheme, add_bos_token
// and add_eos_token the post-processor, and `added_tokens_decoder` adds or
// marks tokens. `label` names the files in
// errors. Error(unsupported) for what the document cannot say the same way:
// an added token that renames a piece or whose id leaves a hole past the
// pieces, a bos/eos piece that is not a piece.
nlohmann::json tokenizer_json_from_sentencepiece(const SentencepieceModel& model,
                                                 const nlohmann::json& config,
                                                 const std::string& label);

}  // namespace llmerge
