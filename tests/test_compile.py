"""torch.compile of the heavy parts: one graph each, no recompiles for new sizes, eager numbers."""

import torch
import torch._dynamo as dynamo
from tiny_models import tiny_model

from vltseg_d2.engine.compile import compile_heavy_parts


def _parts_inputs(model, x):
    features = model.backbone(x)
    mask_features, multi_scale = model.sem_seg_head.pixel_decoder(features)
    return features, mask_features, multi_scale, model.backbone.rein.queries()


def test_backbone_with_rein_pixel_decoder_and_decoder_trace_without_graph_breaks():
    torch.manual_seed(0)
    model = tiny_model().eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        features, mask_features, multi_scale, queries = _parts_inputs(model, x)
        for part, args in ((model.backbone, (x,)), (model.sem_seg_head.pixel_decoder, (features,)),
                           (model.sem_seg_head.predictor, (multi_scale, mask_features, queries))):  # fmt: skip
            explained = dynamo.explain(part)(*args)
            assert (explained.graph_count, explained.graph_break_count) == (1, 0), type(part).__name__


def test_compiled_model_equals_eager_and_new_sizes_do_not_recompile():
    torch.manual_seed(0)
    eager = tiny_model().eval()
    compiled = tiny_model().eval()
    compiled.load_state_dict(eager.state_dict())
    dynamo.reset()
    assert compile_heavy_parts(compiled, backend="aot_eager", dynamic=True) == [
        "backbone", "sem_seg_head.pixel_decoder", "sem_seg_head.predictor"]  # fmt: skip
    assert set(compiled.state_dict()) == set(eager.state_dict())  # checkpoints unchanged
    frames = {}
    for size in ((64, 96), (96, 128), (128, 64)):
        image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = eager.inference([{"image": image}], test_mode="whole")[0]["sem_seg"]
            got = compiled.inference([{"image": image}], test_mode="whole")[0]["sem_seg"]
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        frames[size] = dynamo.utils.counters["stats"]["unique_graphs"]
    sizes = list(frames)
    assert frames[sizes[2]] == frames[sizes[1]], frames  # the third size compiled nothing new


def test_static_compile_with_size_buckets_compiles_once_for_frames_of_one_bucket():
    """dynamic=False (inductor's dynamic shapes fail on this model): frames of three sizes pad to one
    128 x 128 bucket, so the compiled model runs all of them from its first compile, and equals the
    eager model padded the same way."""
    torch.manual_seed(0)
    eager = tiny_model().eval()
    compiled = tiny_model().eval()
    compiled.load_state_dict(eager.state_dict())
    eager.size_bucket = 128
    dynamo.reset()
    compile_heavy_parts(compiled, backend="aot_eager", dynamic=False, size_bucket=128)
    assert compiled.size_bucket == 128
    for i, size in enumerate(((64, 96), (96, 128), (128, 64))):
        image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        with torch.no_grad(), dynamo.config.patch(error_on_recompile=i > 0):
            got = compiled.inference([{"image": image}], test_mode="whole")[0]["sem_seg"]
            expected = eager.inference([{"image": image}], test_mode="whole")[0]["sem_seg"]
        assert got.shape[-2:] == size
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    eager.train()
    assert eager._pad([torch.zeros(3, 64, 96)]).tensor.shape[-2:] == (64, 96)  # training pads to 32 only
