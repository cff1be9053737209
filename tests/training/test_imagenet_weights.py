"""The ImageNet weight mapping is right when the untouched ImageNet model recognises photos."""

import pytest
import torch
from PIL import Image

from phototagger.imaging import PreprocessSpec, to_input
from training.nets.efficientnet_lite import MEAN, STD, VARIANTS, efficientnet_lite

data = pytest.importorskip("skimage.data")

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


@pytest.mark.parametrize("arch", sorted(VARIANTS))
def test_imagenet_model_recognises_a_cat_and_a_coffee(arch: str):
    pytest.importorskip(VARIANTS[arch].package)
    model = efficientnet_lite(arch).eval()
    size = VARIANTS[arch].input_size
    spec = PreprocessSpec(size, round(size / 0.875), MEAN, STD)
    batch = torch.stack([to_input(Image.fromarray(data.chelsea()), spec),
                         to_input(Image.fromarray(data.coffee()), spec)])
    with torch.no_grad():
        probs = model(batch).softmax(-1)
    cat, coffee = probs.argmax(-1).tolist()
    assert cat in CATS and coffee in COFFEE
    assert probs[0, sorted(CATS)].sum() > 0.8 and probs[1, sorted(COFFEE)].sum() > 0.8
