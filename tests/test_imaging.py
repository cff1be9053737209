"""Preprocessing: the model's input is what Pillow's bilinear resize and a centre crop give."""


import numpy as np
import pytest
import torch
from PIL import Image

from images import FIXTURES
from phototagger.imaging import PreprocessSpec, load_input, open_image, resized, to_input

CAMERA_FILES = FIXTURES / "exif"
SPEC = PreprocessSpec(224, 256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def pillow_reference(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """The same preprocessing written plainly with Pillow and numpy, as an independent check."""
    scale = spec.resize / min(image.size)
    size = (max(spec.resize, round(image.width * scale)),
            max(spec.resize, round(image.height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - spec.input_size) // 2, (size[1] - spec.input_size) // 2
    crop = image.crop((left, top, left + spec.input_size, top + spec.input_size))
    array = (np.asarray(crop, dtype=np.float32) / 255 - spec.mean) / spec.std
    return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)


def noise(width: int, height: int) -> Image.Image:
    """Every pixel unlike its neighbours: a crop or a scale off by one pixel shows at once."""
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3))
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (1003, 257), (300, 301), (120, 90)])
def test_input_is_pillows_bilinear_resize_and_centre_crop_within_a_level(size):
    image = noise(*size)
    got, expected = to_input(image, SPEC), pillow_reference(image, SPEC)
    assert got.shape == expected.shape == (3, 224, 224) and got.dtype == torch.float32
    level = 1 / 255 / min(SPEC.std)
    assert (got - expected).abs().max() <= level * 1.01


def test_a_real_photo_decoded_at_reduced_scale_matches_too():
    image, _ = open_image(CAMERA_FILES / "portrait_6.jpg", min_side=SPEC.resize)
    got = load_input(CAMERA_FILES / "portrait_6.jpg", SPEC)[0]
    expected = pillow_reference(image, SPEC)
    level = 1 / 255 / min(SPEC.std)
    assert (got - expected).abs().max() <= level * 1.01
    assert (got - expected).abs().mean() < level / 10  # nearly every pixel identical


def test_resized_keeps_the_aspect_and_the_short_side():
    pixels = resized(noise(1000, 600), 256)
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (3, 256, 427)


def smooth(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 4 * np.pi, width)[None, :]
    y = np.linspace(0, 3 * np.pi, height)[:, None]
    channels = [127 + 120 * np.sin(x + y), 127 + 120 * np.cos(x - y), 127 + 120 * np.sin(x * y / 9)]
    return Image.fromarray(np.stack(channels, axis=2).astype(np.uint8))


def test_a_full_size_photo_is_reduced_first_and_still_matches_pillow():
    """PNG, HEIC and co. arrive at full size (no DCT draft): reduced by a whole factor first."""
    image = smooth(3000, 2000)  # reduced by 3 to 1000x666 before the resize to 384x256
    got, expected = to_input(image, SPEC), pillow_reference(image, SPEC)
    level = 1 / 255 / min(SPEC.std)
    assert got.shape == (3, 224, 224)
    assert (got - expected).abs().mean() < level
    assert (got - expected).abs().max() < 4 * level


def test_detail_tells_a_picture_from_a_featureless_image():
    from images import picture
    from phototagger.imaging import MIN_DETAIL, centre_crop, detail, is_featureless, resized

    def measured(image):  # on the view the model gets
        return detail(centre_crop(resized(image, SPEC.resize), SPEC.input_size))

    smooth = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    assert measured(Image.new("RGB", (320, 240), (135, 180, 235))) == 0.0  # a clear sky
    assert measured(smooth) < MIN_DETAIL  # steps of a level or two: nothing to recognise
    assert measured(picture(seed=3)) > 10 * MIN_DETAIL  # bands and a disc
    assert is_featureless(0.0) and not is_featureless(None)  # None: never measured


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_a_png_is_reduced_as_it_is_decoded_and_feeds_the_model_the_same():
    from phototagger.imaging import decode, prepare

    image = smooth(3000, 2000)
    data = encoded(image, "PNG")
    small, facts = decode(data, min_side=SPEC.resize)
    assert small.size == (1000, 667) and (facts.width, facts.height) == (3000, 2000)
    assert torch.equal(prepare(data, SPEC)[0], to_input(image, SPEC))


def test_a_reduced_photo_is_turned_upright_by_its_own_exif():
    from phototagger.imaging import decode

    image = smooth(3000, 2000)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: the photo is a portrait
    small, facts = decode(encoded(image, "PNG", exif=exif.tobytes()), min_side=SPEC.resize)
    expected = image.transpose(Image.Transpose.ROTATE_270).reduce(3)
    assert small.size == expected.size == (667, 1000) and (facts.width, facts.height) == (
        2000, 3000)
    assert np.abs(np.asarray(small, np.int16) - np.asarray(expected, np.int16)).max() <= 1


def test_a_palette_image_is_reduced_by_its_colours_not_its_indices():
    from phototagger.imaging import decode

    stripes = Image.new("P", (2048, 2048))
    stripes.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    stripes.putdata([x % 2 for _ in range(2048) for x in range(2048)])  # red, blue, red...
    small, _ = decode(encoded(stripes, "PNG"), min_side=256)
    assert small.size == (512, 512)
    assert small.getpixel((10, 10)) == (128, 0, 128)  # their mean, not index 0.5 of a palette


def test_decode_sizes_gives_each_size_as_decode_would():
    from phototagger.imaging import decode, decode_sizes

    for data in (encoded(noise(2400, 1600), "JPEG", quality=90), encoded(noise(2400, 1600), "PNG")):
        images, _ = decode_sizes(data, (256, 1280))
        for side, image in zip((256, 1280), images, strict=True):
            alone, _ = decode(data, min_side=side)
            assert image.size == alone.size and image.tobytes() == alone.tobytes()


def test_an_image_past_a_pixel_limit_is_refused_before_it_is_decoded():
    from phototagger.errors import ImageError
    from phototagger.imaging import decode

    data = encoded(noise(300, 200), "PNG")[:200]  # the header, and data for a few rows only
    with pytest.raises(ImageError, match="^image too large: 300x200 is 0 MP, over the limit"):
        decode(data, max_pixels=50_000)
    with pytest.raises(ImageError, match="truncated png"):
        decode(data)
