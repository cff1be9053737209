"""Graphics are ordinary photos too: how many synthetic banners, charts, diagrams, app screens and
logos does the shipped model tag, against the softmax threshold alone (the baseline)?

Prints figures; never passes or fails. Run from the repository root:

    .venv/bin/python benchmarks/open_set_graphics.py [--per-kind 40] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont

from phototagger import config
from phototagger.model import LandmarkModel
from phototagger.predict import predict_bytes

WORDS = ["SALE 50% OFF", "Summer deals", "Book your trip", "Inbox", "Settings", "ACME", "Step 2"]


class Painter:
    """Random flat graphics of a few kinds, from one seeded generator."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        try:
            self.font = ImageFont.truetype("DejaVuSans-Bold.ttf", 48)
        except OSError:
            self.font = ImageFont.load_default(48)

    def colour(self) -> tuple[int, int, int]:
        return tuple(self.rng.randrange(256) for _ in range(3))

    def text(self, draw: ImageDraw.ImageDraw, xy: tuple[int, int], fill="black") -> None:
        draw.text(xy, self.rng.choice(WORDS), fill=fill, font=self.font)

    def banner(self) -> Image.Image:
        w, h = 1200, 400
        image = Image.new("RGB", (w, h))
        draw = ImageDraw.Draw(image)
        top, bottom = self.colour(), self.colour()
        for y in range(h):
            draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * y / h)
                                                  for a, b in zip(top, bottom, strict=True)))
        for _ in range(self.rng.randrange(2, 6)):
            x, y, r = self.rng.randrange(w), self.rng.randrange(h), self.rng.randrange(20, 150)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=self.colour())
        self.text(draw, (self.rng.randrange(50, 400), self.rng.randrange(50, 250)), self.colour())
        return image

    def chart(self) -> Image.Image:
        image = Image.new("RGB", (900, 600), "white")
        draw = ImageDraw.Draw(image)
        draw.line([(60, 540), (860, 540)], fill="black", width=3)
        draw.line([(60, 40), (60, 540)], fill="black", width=3)
        bars = self.rng.randrange(4, 12)
        for i in range(bars):
            x, height = 80 + i * (760 // bars), self.rng.randrange(40, 480)
            draw.rectangle([x, 540 - height, x + 760 // bars - 15, 540], fill=self.colour())
        self.text(draw, (300, 5))
        return image

    def diagram(self) -> Image.Image:
        image = Image.new("RGB", (1000, 700), self.rng.choice(["white", (245, 245, 250)]))
        draw = ImageDraw.Draw(image)
        boxes = [(self.rng.randrange(800), self.rng.randrange(600))
                 for _ in range(self.rng.randrange(3, 7))]
        for (x, y), (x2, y2) in zip(boxes, boxes[1:], strict=False):
            draw.line([(x + 90, y + 40), (x2 + 90, y2 + 40)], fill="black", width=3)
        for x, y in boxes:
            draw.rectangle([x, y, x + 180, y + 80], outline="black", width=3, fill=self.colour())
            self.text(draw, (x + 10, y + 20))
        return image

    def screen(self) -> Image.Image:
        image = Image.new("RGB", (1280, 800), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, 0, 1280, 60], fill=self.colour())
        draw.rectangle([0, 60, 240, 800], fill=(230, 230, 235))
        for i in range(8):
            draw.rectangle([280, 90 + i * 85, 1240, 160 + i * 85], outline=(200, 200, 200),
                           fill="white")
            self.text(draw, (300, 100 + i * 85))
        return image

    def logo(self) -> Image.Image:
        image = Image.new("RGB", (800, 800), self.colour())
        draw = ImageDraw.Draw(image)
        draw.polygon([(self.rng.randrange(800), self.rng.randrange(800))
                      for _ in range(self.rng.randrange(3, 7))], fill=self.colour())
        self.text(draw, (200, 600), self.colour())
        return image

    def kinds(self) -> dict[str, Callable[[], Image.Image]]:
        return {"banner": self.banner, "chart": self.chart, "diagram": self.diagram,
                "screen": self.screen, "logo": self.logo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")
    painter = Painter(args.seed)
    print(f"model {model.model_id}, threshold {model.threshold}, {args.per_kind} of each kind")
    print(f"{'kind':8} {'tagged':>7} {'suggested':>9} {'none':>5} {'softmax alone':>13}")
    totals: collections.Counter = collections.Counter()
    for kind, paint in painter.kinds().items():
        counts: collections.Counter = collections.Counter()
        for i in range(args.per_kind):
            buffer = io.BytesIO()
            paint().save(buffer, "JPEG", quality=90)
            result = predict_bytes(model, buffer.getvalue(), f"{kind}-{i}.jpg", top_k=1)
            counts[result.decision.outcome.value] += 1
            counts["softmax"] += result.candidates[0].probability >= model.threshold
        totals.update(counts)
        print(f"{kind:8} {counts['tagged']:7} {counts['suggested']:9} {counts['none']:5} "
              f"{counts['softmax']:13}")
    shown = args.per_kind * len(painter.kinds())
    print(f"all      {totals['tagged']:7} {totals['suggested']:9} {totals['none']:5} "
          f"{totals['softmax']:13}")
    print(f"tagged {totals['tagged'] / shown:.1%} of {shown} graphics; softmax alone would tag "
          f"{totals['softmax'] / shown:.1%}")


if __name__ == "__main__":
    main()
