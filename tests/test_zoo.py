"""The model zoo against a local HTTP server: resumed downloads, sha256 records, cache reuse,
conversion of releases in their original layouts, and the printed commands."""

import dataclasses
import hashlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from pretrained_files import dinov2_state
from rein_released import distinct_tensors, released_rein_shapes
from test_rein_checkpoint import TINY_RELEASED
from test_soma_checkpoint import _released_file
from test_tqdm_checkpoint import DEMO as TQDM_DEMO
from test_tqdm_checkpoint import _tqdm_file
from zoo_server import FileServer

from vltseg_d2.checkpoint.rein_mmseg import map_key
from vltseg_d2.utils.safe_load import load_tensor_checkpoint
from vltseg_d2.zoo import catalog
from vltseg_d2.zoo.download import DownloadError
from vltseg_d2.zoo.fetch import get, usage_commands


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _dinov2_bytes() -> bytes:
    torch.manual_seed(0)
    ref = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, img_size=56, embed_dim=32, depth=2, num_heads=2
    )
    return _torch_bytes(dinov2_state(ref))


def _zoo_tool():
    spec = importlib.util.spec_from_file_location("zoo_tool", "tools/zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def server(monkeypatch, tmp_path):
    """The server, with the zoo's entries pointing at it (same names, local URLs) and the
    torch.hub / Hugging Face caches in empty folders."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    with FileServer() as srv:
        for name, entry in list(catalog.ZOO.items()):
            if entry.url:
                local = dataclasses.replace(entry, url=f"{srv.base}/{name}/{entry.file_name}")
                monkeypatch.setitem(catalog.ZOO, name, local)
        yield srv


def test_an_interrupted_download_resumes_where_it_stopped_and_records_the_sha256(server, tmp_path):
    data = _dinov2_bytes()
    server.files["/dinov2_vitl14/dinov2_vitl14_pretrain.pth"] = data
    server.cut_once["/dinov2_vitl14/dinov2_vitl14_pretrain.pth"] = len(data) // 3
    target = tmp_path / "pretrained" / "dinov2_vitl14_pretrain.pth"
    with pytest.raises(DownloadError, match="interrupted after|closed after") as info:
        get("dinov2_vitl14", tmp_path / "pretrained", tmp_path / "checkpoints")
    assert "run the same command again to resume" in str(info.value)
    part = Path(str(target) + ".part")
    assert not target.exists() and part.stat().st_size == len(data) // 3

    fetched = get("dinov2_vitl14", tmp_path / "pretrained", tmp_path / "checkpoints")
    assert server.ranges == [None, f"bytes={len(data) // 3}-"]  # the second request continued
    assert target.read_bytes() == data and not part.exists()
    digest = hashlib.sha256(data).hexdigest()
    assert (tmp_path / "pretrained" / "dinov2_vitl14_pretrain.pth.sha256").read_text() == (
        f"{digest}  dinov2_vitl14_pretrain.pth\n"
    )
    assert fetched.original == target
    assert usage_commands(fetched) == [
        f"python tools/train_net.py --config-file {c} --num-gpus 1 model.backbone.pretrained={target}"
        for c in catalog.ZOO["dinov2_vitl14"].configs
    ]
    # a second get finds it, checks it, downloads nothing
    get("dinov2_vitl14", tmp_path / "pretrained", tmp_path / "checkpoints")
    assert len(server.ranges) == 2


def test_a_file_that_changed_after_its_first_download_is_refused(server, tmp_path):
    server.files["/dinov2_vitl14/dinov2_vitl14_pretrain.pth"] = _dinov2_bytes()
    get("dinov2_vitl14", tmp_path / "pretrained", tmp_path / "checkpoints")
    target = tmp_path / "pretrained" / "dinov2_vitl14_pretrain.pth"
    corrupted = bytearray(target.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    target.write_bytes(bytes(corrupted))
    with pytest.raises(DownloadError, match="differs from .* recorded at its first download"):
        get("dinov2_vitl14", tmp_path / "pretrained", tmp_path / "checkpoints")


def test_a_download_that_is_not_a_checkpoint_is_refused_and_never_recorded(server, tmp_path):
    server.files["/dinov2_vitl14/dinov2_vitl14_pretrain.pth"] = b"<html>rate limit exceeded</html>" * 10
    with pytest.raises(DownloadError, match="not the released file"):
        get("dinov2_vitl14", tmp_path / "pretrained", tmp_path / "checkpoints")
    folder = tmp_path / "pretrained"
    assert sorted(p.name for p in folder.iterdir()) == ["dinov2_vitl14_pretrain.pth.invalid"]


def test_a_file_whose_name_carries_a_hash_prefix_is_checked_against_it(server, tmp_path):
    entry = catalog.ZOO["dinov3_vitl16"]  # named ...-8aa4cbdd.pth; these bytes do not hash to that
    server.files["/signed/dinov3.pth"] = _dinov2_bytes()
    with pytest.raises(DownloadError, match="does not start with 8aa4cbdd"):
        get(entry.name, tmp_path / "pretrained", tmp_path / "checkpoints", url=f"{server.base}/signed/dinov3.pth")


def test_the_torch_hub_and_hugging_face_caches_are_reused_without_a_download(server, tmp_path):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "dinov2_vitl14_pretrain.pth").write_bytes(_dinov2_bytes())
    snapshot = tmp_path / "hf_cache" / "models--QuanSun--EVA-CLIP" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "EVA02_CLIP_L_psz14_s4B.pt").write_bytes(_torch_bytes({"visual.cls_token": torch.ones(1, 1, 8)}))
    (tmp_path / "hf_cache" / "models--QuanSun--EVA-CLIP" / "refs").mkdir()
    (tmp_path / "hf_cache" / "models--QuanSun--EVA-CLIP" / "refs" / "main").write_text("a" * 40)

    for name, cached in (("dinov2_vitl14", hub), ("eva02_clip_l14", snapshot)):
        fetched = get(name, tmp_path / "pretrained", tmp_path / "checkpoints")
        assert fetched.original.is_symlink()
        assert fetched.original.resolve() == (cached / fetched.entry.file_name).resolve()
    assert server.ranges == []  # nothing was requested


def test_a_release_is_downloaded_converted_and_its_commands_printed(server, tmp_path, capsys):
    source = distinct_tensors(released_rein_shapes(**TINY_RELEASED))
    server.files["/rein_dinov2_l_gta/iter_40000_published.pth"] = _torch_bytes(
        {"meta": {"iter": 40000}, "state_dict": source}
    )
    server.files["/dinov2_vitl14/dinov2_vitl14_pretrain.pth"] = _dinov2_bytes()
    pretrained, checkpoints = tmp_path / "pretrained", tmp_path / "checkpoints"
    _zoo_tool()(["get", "rein_dinov2_l_gta", "--pretrained-dir", str(pretrained), "--checkpoint-dir", str(checkpoints)])

    converted = load_tensor_checkpoint(checkpoints / "rein_dinov2_l_gta.pth")["model"]
    assert len(converted) == len(source)
    for key, tensor in source.items():
        assert torch.equal(converted[map_key(key)], tensor), key
    assert (checkpoints / "rein_dinov2_l_gta" / "iter_40000_published.pth.sha256").is_file()
    assert (pretrained / "dinov2_vitl14_pretrain.pth").is_file()  # the backbone it needs came too
    out = capsys.readouterr().out
    weights = (
        f"train.init_checkpoint={checkpoints / 'rein_dinov2_l_gta.pth'} "
        f"model.backbone.pretrained={pretrained / 'dinov2_vitl14_pretrain.pth'}"
    )
    config = "configs/rein/rein_dinov2_l_gta2cbm_512_released.py"
    assert f"python tools/train_net.py --config-file {config} --eval-only {weights}\n" in out
    demo = f"python tools/demo.py --config-file {config} --input path/to/frames/ --output out/rein_dinov2_l_gta"
    assert f"{demo} {weights}\n" in out
    assert "published: paper (Rein protocol): Cityscapes 66.4, BDD 60.4, Mapillary 66.1" in out


def test_a_soma_release_is_converted_from_its_ema_weights_with_the_1024_overrides(server, tmp_path):
    source = _released_file(tmp_path)  # state_dict (EMA, what SoMA evaluated) and raw ema_state_dict
    server.files["/soma_dinov2_l_gsu2cbm_1024/soma_dinov2-L_gsu2cbm_1024x1024_best.pth"] = (
        tmp_path / "soma.pth"
    ).read_bytes()
    fetched = get("soma_dinov2_l_gsu2cbm_1024", tmp_path / "p", tmp_path / "c", with_backbone=False)
    converted = load_tensor_checkpoint(fetched.converted)
    assert converted["soma_init"] == "released"
    lora = converted["model"]["backbone.vit.blocks.3.attn.qkv.lora_A"]  # q, k, v stacked, as the converter tests pin
    assert torch.equal(lora[0], source["backbone.model.blocks.3.attn.q.lora_A.weight"])
    evaluate = usage_commands(fetched, tmp_path / "p")[0]
    assert evaluate.endswith("model.backbone.img_size=1024 model.test_crop=[1024,1024] model.test_stride=[683,683]")


def test_a_tqdm_release_is_taken_from_a_local_file_converted_whole(monkeypatch, tmp_path):
    """Google Drive has no direct link: the user's download is taken with --file; the converted
    file holds both towers, so the printed commands read no CLIP file."""
    source = _tqdm_file(tmp_path)
    entry = dataclasses.replace(catalog.ZOO["tqdm_eva02_l_gta"], configs=(TQDM_DEMO,))  # the demo's widths
    monkeypatch.setitem(catalog.ZOO, "tqdm_eva02_l_gta", entry)
    fetched = get("tqdm_eva02_l_gta", tmp_path / "p", tmp_path / "c", local_file=str(tmp_path / "tqdm.pth"))
    converted = load_tensor_checkpoint(fetched.converted)["model"]
    assert torch.equal(converted["text_encoder.contexts"], source["contexts"])
    assert any("dropped 1; 11 tensors, the frozen initial copy's FPN" in m for m in fetched.messages)
    commands = usage_commands(fetched)
    assert commands[0].endswith(f"--eval-only train.init_checkpoint={fetched.converted} model.backbone.pretrained=None")


def test_gated_and_unknown_entries_are_one_line():
    for argv, expected in (
        (
            ["get", "dinov3_vitl16"],
            "error: dinov3_vitl16 has no public download link: request access at https://ai.meta.com",
        ),
        (["get", "rein_dinov2_l_gt"], "error: no zoo entry named 'rein_dinov2_l_gt' (did you mean rein_dinov2_l_gta"),
    ):
        result = subprocess.run([sys.executable, "tools/zoo.py", *argv], capture_output=True, text=True)
        assert result.returncode == 1 and result.stderr.startswith(expected), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_every_entry_names_existing_configs_and_a_source():
    for entry in catalog.ZOO.values():
        assert entry.url or entry.how_to_get, entry.name
        for config in entry.configs:
            assert Path(config).is_file(), (entry.name, config)
        if entry.kind == "release":
            assert entry.converter in ("rein", "soma", "tqdm") and entry.published, entry.name
