//! The encoder with int8 weights: BERT's forward pass written out over the loaded tensors,
//! with every linear layer (attention projections, attention output, both feed-forward
//! layers: 97% of the encoder's multiply-adds) run by FBGEMM's int8 GEMM with fp32
//! activations — libtorch's dynamic quantization. Weights are quantized per tensor,
//! asymmetrically to [-128, 127], when the model loads; activations are quantized per
//! call by FBGEMM. Embeddings, layer norms, softmax and GELU stay in f32.
//!
//! Only the inference path: texts go through without padding (as [`crate::transformer::
//! Encoder::embed`] sends them), so there is no attention mask.

use std::collections::HashMap;

use tch::{Kind, Scalar, Tensor};

use crate::SentimentError;

/// A linear layer with int8 weights, quantized per output channel: FBGEMM's kernel takes
/// one scale per matrix, so each row of the weights is first divided by its largest
/// magnitude (rows then span [-1, 1] alike), the int8 product is computed with a zero
/// bias, and the output columns are multiplied back by the row scales before the bias is
/// added. Per-tensor scales cost 1.1 points of test accuracy on the shipped model (small
/// rows lose their precision to the large ones); per channel, see benches/RESULTS.md.
#[derive(Debug)]
struct Int8Linear {
    weight: Tensor,
    packed: Tensor,
    col_offsets: Tensor,
    scale: f64,
    zero_point: i64,
    zero_bias: Tensor,
    row_scales: Tensor,
    bias: Tensor,
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
        let bias = bias.detach().to_kind(Kind::Float).contiguous();
        Int8Linear {
            weight: q,
            packed,
            col_offsets,
            scale,
            zero_point,
            zero_bias: bias.zeros_like(),
            row_scales,
            bias,
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
                &self.zero_bias,
            )
            .map(|y| y * &self.row_scales + &self.bias)
            .map_err(|e| SentimentError::Inference(format!("int8 linear layer: {e}")))
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
    qkv: Int8Linear,
    attention_out: Int8Linear,
    attention_norm: LayerNorm,
    intermediate: Int8Linear,
    output: Int8Linear,
    output_norm: LayerNorm,
}

/// BERT with int8 linear layers.
#[derive(Debug)]
pub struct Int8Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: i64,
    eps: f64,
}

impl Int8Bert {
    /// Builds the quantized encoder from the loaded (f32) tensors, named as in BERT's
    /// checkpoints; `heads` attention heads, GELU activations, layer-norm `eps`.
    pub fn new(
        tensors: &HashMap<String, Tensor>,
        layers: i64,
        heads: i64,
        eps: f64,
    ) -> Result<Int8Bert, SentimentError> {
        let get = |name: &str| -> Result<Tensor, SentimentError> {
            tensors
                .get(name)
                .map(|t| t.detach().to_kind(Kind::Float))
                .ok_or_else(|| SentimentError::Load(format!("the encoder has no tensor {name}")))
        };
        let linear = |prefix: &str| -> Result<Int8Linear, SentimentError> {
            Ok(Int8Linear::new(
                &get(&format!("{prefix}.weight"))?,
                &get(&format!("{prefix}.bias"))?,
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
                    qkv: Int8Linear::new(&stacked("weight")?, &stacked("bias")?),
                    attention_out: linear(&format!("{p}.attention.output.dense"))?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"))?,
                    output: linear(&format!("{p}.output.dense"))?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, SentimentError>>()?;
        Ok(Int8Bert {
            word: get("embeddings.word_embeddings.weight")?,
            position: get("embeddings.position_embeddings.weight")?,
            token_type: get("embeddings.token_type_embeddings.weight")?,
            embeddings_norm: norm("embeddings.LayerNorm")?,
            layers,
            heads,
            eps,
        })
    }

    /// Last hidden states `[n, length, hidden]` for token ids `[n, length]` (no padding).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor, SentimentError> {
        let (n, length) = (ids.size()[0], ids.size()[1]);
        let positions = Tensor::arange(length, (Kind::Int64, ids.device()));
        let embedded = self
            .word
            .index_select(0, &ids.view([-1]))
            .view([n, length, -1])
            + self.position.index_select(0, &positions).unsqueeze(0)
            + self.token_type.get(0);
        let mut x = self.embeddings_norm.forward(&embedded, self.eps);
        let hidden = x.size()[2];
        let head_dim = hidden / self.heads;
        // Every token attends to every token (no padding). tch hands libtorch an undefined
        // tensor for a `None` mask, which its checks refuse, so the mask is spelled out.
        let everyone = Tensor::ones([length, length], (Kind::Bool, ids.device()));
        let split = |t: &Tensor| t.reshape([n, length, self.heads, head_dim]).transpose(1, 2);
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?.chunk(3, -1);
            let context = Tensor::f_scaled_dot_product_attention(
                &split(&qkv[0]),
                &split(&qkv[1]),
                &split(&qkv[2]),
                Some(&everyone),
                0.0,
                false,
                None,
            )
            .map_err(|e| SentimentError::Inference(format!("attention: {e}")))?
            .transpose(1, 2)
            .contiguous()
            .view([n, length, hidden]);
            let attended = layer
                .attention_norm
                .forward(&(layer.attention_out.forward(&context)? + &x), self.eps);
            let inner = layer.intermediate.forward(&attended)?.gelu("none");
            x = layer
                .output_norm
                .forward(&(layer.output.forward(&inner)? + &attended), self.eps);
        }
        Ok(x)
    }
}
