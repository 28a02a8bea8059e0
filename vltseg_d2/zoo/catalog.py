"""The released files this project uses: where each comes from, what it is, which config uses it,
how it is converted and what its authors published with it.

Sources are the original authors' own: Meta's public DINOv2 bucket (also where ``torch.hub``
caches it), the EVA-CLIP Hugging Face repository, and the GitHub releases of Rein
(github.com/w1oves/Rein) and SoMA (github.com/ysj9909/SoMA, tag v1.0). Published numbers are
mIoU as the papers or the release pages state them, with their protocol.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

DINOV2_BUCKET = "https://dl.fbaipublicfiles.com/dinov2"
REIN_RELEASES = "https://github.com/w1oves/Rein/releases/download"
SOMA_RELEASE = "https://github.com/ysj9909/SoMA/releases/download/v1.0"
# SoMA's 1024 models: crop 1024, sliding window 1024 / stride 683 (its *_1024x1024.py configs)
ACDC_VAL = "dataloader.test_datasets=[" + ",".join(f"acdc_{c}_val" for c in ("fog", "night", "rain", "snow")) + "]"
SOMA_1024 = ("model.backbone.img_size=1024", "model.test_crop=[1024,1024]", "model.test_stride=[683,683]")


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # "backbone" (original pretrained weights) or "release" (a trained model)
    what: str
    file_name: str
    url: Optional[str] = None  # None: no public direct link (gated, or the file must be picked by hand)
    how_to_get: str = ""  # for url=None: what a user does instead
    hf_repo: Optional[str] = None  # Hugging Face repository holding file_name (its cache is reused)
    torch_hub: bool = False  # torch.hub caches url under <hub dir>/checkpoints/<file_name>
    configs: Tuple[str, ...] = ()
    converter: Optional[str] = None  # "rein", "soma" or "tqdm": converted into this project's layout
    backbone: Optional[str] = None  # the zoo entry of the frozen weights a compact release needs
    eval_overrides: Tuple[str, ...] = ()
    published: str = ""
    notes: str = field(default="")


_TQDM_CONFIG = "configs/tqdm/tqdm_eva02_l_gta2cbm_512_bs8_20k.py"

BACKBONES = (
    ZooEntry(
        "dinov2_vitl14",
        "backbone",
        "DINOv2 ViT-L/14 (Meta), the frozen backbone of Rein and SoMA",
        "dinov2_vitl14_pretrain.pth",
        url=f"{DINOV2_BUCKET}/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
        torch_hub=True,
        configs=(
            "configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py",
            "configs/rein/rein_dinov2_l_citys2acdc_1024_bs8_40k.py",
            "configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py",
        ),
    ),
    ZooEntry(
        "dinov2_vitl14_reg4",
        "backbone",
        "DINOv2 ViT-L/14 with 4 registers (Meta)",
        "dinov2_vitl14_reg4_pretrain.pth",
        url=f"{DINOV2_BUCKET}/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth",
        torch_hub=True,
        configs=(
            "configs/rein/rein_dinov2reg_l_gta2cbm_512_bs4_40k.py",
            "configs/soma/soma_dinov2reg_l_gta2cbm_512_bs4_40k.py",
        ),
    ),
    ZooEntry(
        "eva02_clip_l14",
        "backbone",
        "EVA02-CLIP-L/14 (BAAI; vision tower used, text tower dropped by name), VLTSeg's backbone",
        "EVA02_CLIP_L_psz14_s4B.pt",
        url="https://huggingface.co/QuanSun/EVA-CLIP/resolve/main/EVA02_CLIP_L_psz14_s4B.pt",
        hf_repo="QuanSun/EVA-CLIP",
        configs=(
            "configs/vltseg/vltseg_eva02_l_gta2cbm_512_bs16_5k.py",
            "configs/vltseg/vltseg_eva02_l_citys2acdc_1024_bs8_20k.py",
            "configs/rein/rein_eva02_l_gta2cbm_512_bs4_40k.py",
        ),
    ),
    ZooEntry(
        "eva02_clip_l14_336",
        "backbone",
        "EVA02-CLIP-L/14-336 (BAAI): tqdm's image tower and CLIP text tower, both read from this file",
        "EVA02_CLIP_L_336_psz14_s6B.pt",
        url="https://huggingface.co/QuanSun/EVA-CLIP/resolve/main/EVA02_CLIP_L_336_psz14_s6B.pt",
        hf_repo="QuanSun/EVA-CLIP",
        configs=(_TQDM_CONFIG,),
    ),
    ZooEntry(
        "dinov3_vitl16",
        "backbone",
        "DINOv3 ViT-L/16 distilled, LVD-1689M (Meta); gated: its licence must be accepted first",
        "dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth",
        how_to_get=(
            "request access at https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/ ; "
            "Meta e-mails signed download links: run `python tools/zoo.py get dinov3_vitl16 --url '<the "
            "emailed link of dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth>'` (or put the file in pretrained/)"
        ),
        configs=(
            "configs/rein/rein_dinov3_l_gta2cbm_512_bs4_40k.py",
            "configs/soma/soma_dinov3_l_gta2cbm_512_bs4_40k.py",
        ),
    ),
)

_REIN_GTA_CONFIG = "configs/rein/rein_dinov2_l_gta2cbm_512_released.py"
_SOMA_CONFIG = "configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py"
_NO_SMALL_CONFIG = (
    "no config in this project yet: Rein's ViT-S/B configs exist only as release files (config.py "
    "beside the checkpoint); the converted file is written, evaluating it needs such a config"
)


def _rein(name, what, file_name, *, configs=(_REIN_GTA_CONFIG,), backbone="dinov2_vitl14", **kwargs) -> ZooEntry:
    """A Rein release: Rein + head only, converted by the Rein converter."""
    return ZooEntry(name, "release", f"{what} (Rein + head only)", file_name, configs=configs, converter="rein",
                    backbone=backbone, **kwargs)  # fmt: skip


def _soma(tag, file_tag, sources, crop, published, **kwargs) -> ZooEntry:
    """A SoMA v1.0 release: adapters + head (EMA weights) on DINOv2-L, converted by the SoMA converter."""
    return ZooEntry(
        f"soma_dinov2_l_{tag}",
        "release",
        f"SoMA (DINOv2-L) trained on {sources}, {crop} crops (adapters + head, EMA weights)",
        f"soma_dinov2-L_{file_tag}_best.pth",
        url=f"{SOMA_RELEASE}/soma_dinov2-L_{file_tag}_best.pth",
        configs=(_SOMA_CONFIG,),
        converter="soma",
        backbone="dinov2_vitl14",
        published=published,
        **kwargs,
    )


def _tqdm(tag, source, drive_id, configs, published, notes="") -> ZooEntry:
    """A tqdm release (EVA02-CLIP-L, Google Drive: no direct link): the whole model, both towers
    included, so evaluating it reads no other file."""
    return ZooEntry(
        f"tqdm_eva02_l_{tag}",
        "release",
        f"tqdm (EVA02-CLIP-L/14-336, text queries) trained on {source}, 512 crops, 20k iterations (whole model)",
        "(the file Google Drive gives)",
        how_to_get=(
            f"download it from https://drive.google.com/file/d/{drive_id}/view (linked in tqdm's README; "
            f"Google Drive asks for a click), then `python tools/zoo.py get tqdm_eva02_l_{tag} --file <the .pth>`"
        ),
        configs=configs,
        converter="tqdm",
        eval_overrides=("model.backbone.pretrained=None",),
        published=published,
        notes=notes,
    )


RELEASES = (
    _rein(
        "rein_dinov2_l_gta",
        "Rein (DINOv2-L) trained on GTA5, 512 crops, 40k iterations",
        "iter_40000_published.pth",
        url=f"{REIN_RELEASES}/GTAV/iter_40000_published.pth",
        published=(
            "paper (Rein protocol): Cityscapes 66.4, BDD 60.4, Mapillary 66.1 (avg 64.3); "
            "release page for this file: Cityscapes 66.7, BDD 60.0"
        ),
    ),
    _rein(
        "rein_dinov2_l_citys2acdc",
        "Rein (DINOv2-L) trained on Cityscapes, 1024 crops, 40k iterations",
        "citys2acdc_40k_rein_head.pth",
        url=f"{REIN_RELEASES}/Cityscapes/citys2acdc_40k_rein_head.pth",
        configs=("configs/rein/rein_dinov2_l_citys2acdc_1024_bs8_40k.py",),
        published="ACDC test 77.56 (server), Cityscapes-C 60.0 (release page)",
    ),
    _rein(
        "rein_dinov2_l_urbansyn_gta_synthia",
        "Rein (DINOv2-L) trained on UrbanSyn + GTA5 + SYNTHIA",
        "(named on the release page)",
        how_to_get=(
            "download the checkpoint from https://github.com/w1oves/Rein/releases/tag/UrbanSyn%2BGTAV%2BSynthia "
            "(its README does not name the file), then `python tools/zoo.py get "
            "rein_dinov2_l_urbansyn_gta_synthia --file <the downloaded .pth>`"
        ),
        published="Cityscapes 78.4 (release page)",
        notes="its training crop is not stated on the release page; the 512 model is assumed",
    ),
    *(
        _rein(
            f"rein_dinov2_{size[0].lower()}_gta",
            f"Rein (DINOv2 ViT-{size[0]}/14) trained on GTA5",
            "iter_40000_published.pth",
            url=f"{REIN_RELEASES}/GTAV%2BViT-{size}/iter_40000_published.pth",
            configs=(),
            backbone=None,
            published=f"Cityscapes {miou} (release page)",
            notes=_NO_SMALL_CONFIG,
        )
        for size, miou in (("Small", 55.3), ("Base", 64.3))
    ),
    _tqdm(
        "gta",
        "GTA5",
        "1niKdUcoeP9Gd4F2O0LikTHBg39xHO8j0",
        (_TQDM_CONFIG,),
        "paper: Cityscapes 68.9 (full-resolution protocol, single scale)",
    ),
    _tqdm(
        "citys",
        "Cityscapes",
        "1_FXNthSshuvGraEX-2JxQWsGvtpeG9A7",
        (),
        "not stated with the release",
        notes="no Cityscapes-source tqdm config in this project yet (its lr 1e-4, wd 1e-5 recipe): converted only",
    ),
    _soma("g2cbm", "g2cbm", "GTA5", 512, "C/B/M average 68.27 (full-resolution protocol, release page)"),
    _soma("gs2cbm", "gs2cbm", "GTA5 + SYNTHIA", 512, "C/B/M average 69.26 (release page)"),
    _soma("gsu2cbm", "gsu2cbm", "GTA5 + SYNTHIA + UrbanSyn", 512, "C/B/M average 71.68 (release page)"),
    _soma(
        "gsu2cbm_1024",
        "gsu2cbm_1024x1024",
        "GTA5 + SYNTHIA + UrbanSyn",
        1024,
        "C/B/M average 73.12 (release page)",
        eval_overrides=SOMA_1024,
    ),
    _soma(
        "c2bm",
        "c2bm",
        "Cityscapes",
        512,
        "BDD / Mapillary average 71.74 (release page)",
        eval_overrides=("dataloader.test_datasets=[bdd_val,mapillary_val_half]",),
    ),
    _soma(
        "citys2acdc",
        "acdc_1024x1024",
        "Cityscapes",
        1024,
        "ACDC test 78.75 (server); its ACDC val is evaluated as is (1920x1080), as here",
        eval_overrides=SOMA_1024 + (ACDC_VAL,),
    ),
)

ZOO = {entry.name: entry for entry in BACKBONES + RELEASES}
