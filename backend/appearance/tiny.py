"""A tiny random Wan-Animate pipeline built locally (diffusers' own test sizes), for tests and dry runs.

The sizes follow diffusers' WanAnimate fast tests; their tiny T5 and tokenizer live on a hub that cannot be reached
here, so an equally tiny T5 encoder and a word-level tokenizer are built in code.
"""

from __future__ import annotations

WORDS = "a the person dancer dancing dance ballroom waltz studio light full body shot negative blurry".split()


def tiny_tokenizer():
    """A word-level fast tokenizer with T5's special tokens (no files, no downloads)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_pipeline(seed: int = 0, positions: int = 32):
    """WanAnimatePipeline with random tiny components (runs on a CPU in well under a second at 16x16).

    `positions` sizes the transformer's rotary position table (rows per axis: patch rows, patch columns, latent
    frames), so a dry run can take the width, height and segment length a user asks for.
    """
    import torch

    from backend.appearance.clip_processor import image_processor, prefer_pil_processor

    prefer_pil_processor()
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanAnimatePipeline, \
        WanAnimateTransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, T5Config, T5EncoderModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                           num_heads=4))
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    torch.manual_seed(seed)
    transformer = WanAnimateTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, latent_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", image_dim=4, rope_max_seq_len=max(32, int(positions)),
        motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16}, motion_encoder_size=16, motion_style_dim=8,
        motion_dim=4, motion_encoder_dim=16, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
        inject_face_latents_blocks=2)
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=4,
        intermediate_size=16, patch_size=1))
    pipe = WanAnimatePipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                              scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                              image_processor=image_processor(crop_size=4, size=4), image_encoder=image_encoder,
                              transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe
