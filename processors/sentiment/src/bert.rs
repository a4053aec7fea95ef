//! BERT's forward pass for inference, written out over the loaded tensors, with the texts
//! of a call packed one after another: no padding, so no position is ever computed that
//! a text does not have, and every matrix product runs over the tokens of all the texts
//! at once.
//!
//! What a text's scores may depend on, and what they do not:
//! - **Linear layers** multiply a `[tokens, in]` matrix, every text's tokens stacked. A
//!   row of the result is its own row of the input times the weights; a GEMM kernel may
//!   still block its sums by the number of rows (seen on an AMD EPYC without AVX-512,
//!   last bits of f32 scores, 3e-9; bf16 on an Intel Xeon with AMX, 4.2e-4), hence the
//!   stated tolerances ([`crate::BATCH_TOLERANCE`], [`crate::BF16_BATCH_TOLERANCE`]).
//! - **int8 linear layers** quantize their activations with one scale per call (FBGEMM's
//!   dynamic quantization), which would let a text's neighbours move its scores, so they
//!   run one text at a time: bit for bit whatever the batch.
//! - **Attention** runs one text at a time (`scaled_dot_product_attention` over that
//!   text's own keys), layer norms and GELU token by token.
//!
//! Query, key and value are one product (their weights stacked), attention one fused
//! call: rust-bert's BERT (which fine-tuning still uses) computes the same with three
//! products and an unfused softmax.

use std::collections::HashMap;

use tch::{Device, Kind, Scalar, Tensor};

use crate::SentimentError;

fn err(what: &str) -> impl Fn(tch::TchError) -> SentimentError + '_ {
    move |e| SentimentError::Inference(format!("{what}: {e}"))
}

/// How the encoder's linear layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    /// In the kind of the loaded tensors (f32, or bf16 after `VarStore::bfloat16`).
    Float,
    /// int8 weights, f32 activations ([`Int8Linear`]); everything else in f32.
    Int8,
}

/// A linear layer with int8 weights, quantized per output channel: FBGEMM's kernel takes
/// one scale per matrix, so each row of the weights is first divided by its largest
/// magnitude (rows then span [-1, 1] alike), the int8 product is computed with the bias
/// divided by the same scales, and the output columns are multiplied back by them. Per-tensor scales cost 1.1 points of test accuracy on the shipped model (small
/// rows lose their precision to the large ones); per channel, see benches/RESULTS.md.
#[derive(Debug)]
struct Int8Linear {
    weight: Tensor,
    packed: Tensor,
    col_offsets: Tensor,
    scale: f64,
    zero_point: i64,
    /// The bias divided by the row scales: FBGEMM adds it before the output columns are
    /// scaled back, which then yields the bias itself.
    scaled_bias: Tensor,
    row_scales: Tensor,
}

impl Int8Linear {
    /// Quantizes `weight` `[out, in]`: rows normalised as above, then scale and zero point
    /// map the range, widened to include 0, onto [-128, 127] (what
    /// `fbgemm_linear_quantize_weight` computes).
    fn new(weight: &Tensor, bias: &Tensor) -> Int8Linear {
        let weight = weight.detach().to_kind(Kind::Float);
        let row_scales = weight
            .abs()
            .amax([1i64].as_slice(), false)
            .clamp_min(f64::from(f32::EPSILON));
        let weight = (&weight / row_scales.unsqueeze(1)).contiguous();
        let min = weight.min().double_value(&[]).min(0.0);
        let max = weight.max().double_value(&[]).max(0.0);
        let scale = ((max - min) / 255.0).max(f64::EPSILON);
        let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i64;
        let q = (&weight / scale)
            .round()
            .g_add_scalar(zero_point)
            .clamp(-128, 127)
            .to_kind(Kind::Int8)
            .contiguous();
        // FBGEMM's column offsets: per output row, the sum of its quantized weights less
        // zero point × inputs.
        let inputs = weight.size()[1];
        let col_offsets = (q
            .to_kind(Kind::Int64)
            .sum_dim_intlist(1, false, Kind::Int64)
            - zero_point * inputs)
            .to_kind(Kind::Int)
            .contiguous();
        let packed = q.fbgemm_pack_quantized_matrix();
        let scaled_bias = (bias.detach().to_kind(Kind::Float) / &row_scales).contiguous();
        Int8Linear {
            weight: q,
            packed,
            col_offsets,
            scale,
            zero_point,
            scaled_bias,
            row_scales,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, SentimentError> {
        x.contiguous()
            .f_fbgemm_linear_int8_weight_fp32_activation(
                &self.weight,
                &self.packed,
                &self.col_offsets,
                Scalar::float(self.scale),
                Scalar::int(self.zero_point),
                &self.scaled_bias,
            )
            .and_then(|mut y| y.f_mul_(&self.row_scales))
            .map_err(err("int8 linear layer"))
    }
}

/// A linear layer in either arithmetic.
#[derive(Debug)]
enum Linear {
    Float { weight: Tensor, bias: Tensor },
    Int8(Int8Linear),
}

impl Linear {
    fn new(weight: Tensor, bias: Tensor, arithmetic: Arithmetic) -> Linear {
        match arithmetic {
            Arithmetic::Float => Linear::Float {
                weight: weight.contiguous(),
                bias: bias.contiguous(),
            },
            Arithmetic::Int8 => Linear::Int8(Int8Linear::new(&weight, &bias)),
        }
    }

    /// `x` `[tokens, in]` → `[tokens, out]`; `texts` splits the rows by text.
    fn forward(&self, x: &Tensor, texts: &Segments) -> Result<Tensor, SentimentError> {
        match self {
            Linear::Float { weight, bias } => x.f_linear(weight, Some(bias)).map_err(err("linear")),
            Linear::Int8(int8) if texts.len() == 1 => int8.forward(x),
            Linear::Int8(int8) => {
                let parts = texts
                    .iter()
                    .map(|(start, length)| int8.forward(&x.narrow(0, start, length)))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::f_cat(&parts, 0).map_err(err("int8 linear layer"))
            }
        }
    }
}

#[derive(Debug)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor, eps: f64) -> Tensor {
        let width = *x.size().last().expect("a hidden dimension");
        x.layer_norm([width], Some(&self.weight), Some(&self.bias), eps, false)
    }
}

#[derive(Debug)]
struct Layer {
    /// Query, key and value projections in one product (their weights stacked).
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// Where each text's tokens are in the packed rows: `(first row, token count)`.
#[derive(Debug)]
struct Segments(Vec<(i64, i64)>);

impl Segments {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().copied()
    }
}

/// BERT for inference over packed texts.
#[derive(Debug)]
pub struct PackedBert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: i64,
    eps: f64,
}

impl PackedBert {
    /// Builds the encoder from the loaded tensors, named as in BERT's checkpoints; `heads`
    /// attention heads, GELU activations, layer-norm `eps`. With [`Arithmetic::Float`] it
    /// computes in the tensors' kind, with [`Arithmetic::Int8`] in f32 with int8 linear
    /// layers.
    pub fn new(
        tensors: &HashMap<String, Tensor>,
        layers: i64,
        heads: i64,
        eps: f64,
        arithmetic: Arithmetic,
    ) -> Result<PackedBert, SentimentError> {
        let get = |name: &str| -> Result<Tensor, SentimentError> {
            let t = tensors
                .get(name)
                .ok_or_else(|| SentimentError::Load(format!("the encoder has no tensor {name}")))?;
            Ok(match arithmetic {
                Arithmetic::Float => t.detach(),
                Arithmetic::Int8 => t.detach().to_kind(Kind::Float),
            })
        };
        let linear = |prefix: &str| -> Result<Linear, SentimentError> {
            Ok(Linear::new(
                get(&format!("{prefix}.weight"))?,
                get(&format!("{prefix}.bias"))?,
                arithmetic,
            ))
        };
        let norm = |prefix: &str| -> Result<LayerNorm, SentimentError> {
            Ok(LayerNorm {
                weight: get(&format!("{prefix}.weight"))?,
                bias: get(&format!("{prefix}.bias"))?,
            })
        };
        let layers = (0..layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let stacked = |part: &str| -> Result<Tensor, SentimentError> {
                    let parts = ["query", "key", "value"]
                        .map(|which| get(&format!("{p}.attention.self.{which}.{part}")));
                    let [q, k, v] = parts;
                    Ok(Tensor::cat(&[q?, k?, v?], 0))
                };
                Ok(Layer {
                    qkv: Linear::new(stacked("weight")?, stacked("bias")?, arithmetic),
                    attention_out: linear(&format!("{p}.attention.output.dense"))?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"))?,
                    output: linear(&format!("{p}.output.dense"))?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, SentimentError>>()?;
        Ok(PackedBert {
            word: get("embeddings.word_embeddings.weight")?,
            position: get("embeddings.position_embeddings.weight")?,
            token_type: get("embeddings.token_type_embeddings.weight")?,
            embeddings_norm: norm("embeddings.LayerNorm")?,
            layers,
            heads,
            eps,
        })
    }

    /// Each text's mean last hidden state, `[texts, hidden]` in f32, for the token ids of
    /// each text (none empty: BERT's texts hold at least `[CLS]` and `[SEP]`).
    pub fn mean_hidden(&self, texts: &[&[i64]]) -> Result<Tensor, SentimentError> {
        let mut segments = Vec::with_capacity(texts.len());
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        for t in texts {
            if t.is_empty() {
                return Err(SentimentError::Inference("a text with no tokens".into()));
            }
            segments.push((ids.len() as i64, t.len() as i64));
            ids.extend_from_slice(t);
            positions.extend(0..t.len() as i64);
        }
        let segments = Segments(segments);
        if segments.len() == 0 {
            return Ok(Tensor::zeros(
                [0, self.word.size()[1]],
                (Kind::Float, Device::Cpu),
            ));
        }
        let ids = Tensor::from_slice(&ids);
        let positions = Tensor::from_slice(&positions);
        let embedded = self.word.index_select(0, &ids)
            + self.position.index_select(0, &positions)
            + self.token_type.get(0);
        let mut x = self.embeddings_norm.forward(&embedded, self.eps);
        let hidden = x.size()[1];
        let head_dim = hidden / self.heads;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, &segments)?;
            let contexts = segments
                .iter()
                .map(|(start, length)| self.attend(&qkv.narrow(0, start, length), head_dim))
                .collect::<Result<Vec<_>, _>>()?;
            let context = Tensor::f_cat(&contexts, 0).map_err(err("attention"))?;
            // Residuals and GELU in place: fewer large temporaries to allocate.
            let mut attended = layer.attention_out.forward(&context, &segments)?;
            let _ = attended.f_add_(&x).map_err(err("residual"))?;
            let attended = layer.attention_norm.forward(&attended, self.eps);
            let mut inner = layer.intermediate.forward(&attended, &segments)?;
            let _ = inner.gelu_("none");
            let mut out = layer.output.forward(&inner, &segments)?;
            let _ = out.f_add_(&attended).map_err(err("residual"))?;
            x = layer.output_norm.forward(&out, self.eps);
        }
        let means: Vec<Tensor> = segments
            .iter()
            .map(|(start, length)| x.narrow(0, start, length).mean_dim(0, false, Kind::Float))
            .collect();
        Tensor::f_stack(&means, 0).map_err(err("pooling"))
    }

    /// One text's attention: `qkv` `[length, 3 × hidden]` → context `[length, hidden]`.
    fn attend(&self, qkv: &Tensor, head_dim: i64) -> Result<Tensor, SentimentError> {
        let length = qkv.size()[0];
        let split = |t: &Tensor| t.reshape([1, length, self.heads, head_dim]).transpose(1, 2);
        let parts = qkv.chunk(3, -1);
        // Every token attends to every token of its text. tch hands libtorch an undefined
        // tensor for a `None` mask, which its checks refuse, so the mask is spelled out.
        let everyone = Tensor::ones([length, length], (Kind::Bool, Device::Cpu));
        Ok(Tensor::f_scaled_dot_product_attention(
            &split(&parts[0]),
            &split(&parts[1]),
            &split(&parts[2]),
            Some(&everyone),
            0.0,
            false,
            None,
        )
        .map_err(err("attention"))?
        .transpose(1, 2)
        .reshape([length, self.heads * head_dim]))
    }
}
