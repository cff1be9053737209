"""The one decision: tagged, suggested or none, with its reason, for every case."""

from __future__ import annotations

import pytest
import torch

from images import FIXTURES, picture
from phototagger.decision import Evidence, Facts, Outcome, Policy, Reason, decide
from phototagger.imaging import prepare
from phototagger.landmarks import read_gazetteer
from phototagger.model import LandmarkModel, save_model_file
from phototagger.predict import predict_bytes
from tiny_model import TinyNet, gated, tiny_model_meta

EIFFEL = read_gazetteer(FIXTURES / "gazetteer.csv")["eiffel-tower"]
POLICY = Policy(threshold=0.5, tag_margin=0.2, suggest_margin=0.05)
PARIS = (48.86, 2.29)
SYDNEY = (-33.86, 151.21)


def evidence(probability=0.9, similarity=0.8, ordinary=0.4) -> Evidence:
    return Evidence(EIFFEL, probability, similarity, ordinary)


@pytest.mark.parametrize(
    "guess, facts, outcome, reason",
    [
        (evidence(), Facts(0.3), Outcome.TAGGED, Reason.VERIFIED),
        (evidence(), Facts(0.3, PARIS), Outcome.TAGGED, Reason.VERIFIED),
        (evidence(probability=0.4), Facts(0.3), Outcome.NONE, Reason.BELOW_THRESHOLD),
        (evidence(), Facts(0.001), Outcome.NONE, Reason.FEATURELESS),
        (evidence(), Facts(0.3, SYDNEY), Outcome.NONE, Reason.FAR_FROM_CAMERA),
        (evidence(similarity=0.55), Facts(0.3), Outcome.SUGGESTED, Reason.UNVERIFIED),
        (evidence(similarity=0.42), Facts(0.3), Outcome.NONE, Reason.NOT_SIMILAR),
        (evidence(similarity=None, ordinary=None), Facts(0.3), Outcome.SUGGESTED,
         Reason.NO_EVIDENCE),
        # A person's decision holds, whatever the model and the photo say.
        (evidence(probability=0.1), Facts(0.001, SYDNEY, "confirmed"), Outcome.TAGGED,
         Reason.PERSON),
        (evidence(), Facts(0.3, PARIS, "removed"), Outcome.NONE, Reason.REMOVED),
    ],
)
def test_each_case_has_its_outcome_and_reason(guess, facts, outcome, reason):
    decision = decide(guess, facts, POLICY)
    assert (decision.outcome, decision.reason) == (outcome, reason)
    assert decision.tagged is (outcome is Outcome.TAGGED)


def test_the_reasons_are_said_in_plain_words():
    said = {
        reason: decide(guess, facts, POLICY).explain(POLICY)
        for guess, facts, reason in [
            (evidence(), Facts(0.3), "verified"),
            (evidence(similarity=0.42), Facts(0.3), "not similar"),
            (evidence(similarity=0.55), Facts(0.3), "unverified"),
            (evidence(probability=0.4), Facts(0.3), "below"),
            (evidence(), Facts(0.3, SYDNEY), "far"),
        ]
    }
    assert said["verified"] == ("Eiffel Tower (0.90), and its known photos back it (0.40 more "
                                "alike than ordinary photos): tagged")
    assert said["not similar"] == ("looks most like Eiffel Tower (0.90), but no known photo of "
                                   "it is similar enough (0.02): not tagged")
    assert said["unverified"].endswith("(0.15 against 0.20 needed): a suggestion")
    assert said["below"].endswith("below the threshold 0.50: not tagged")
    assert "the camera's GPS puts it 16,9" in said["far"]  # Paris to Sydney, about 16,960 km


SURE = Policy(threshold=0.5, tag_margin=0.2, suggest_margin=0.05, tag_probability=0.95)


def test_a_tag_needs_the_tag_probability_too():
    unsure = decide(evidence(probability=0.9), Facts(0.3), SURE)
    assert (unsure.outcome, unsure.reason) == (Outcome.SUGGESTED, Reason.UNSURE)
    assert unsure.explain(SURE).endswith("not sure enough for a tag (0.95 needed): a suggestion")
    assert decide(evidence(probability=0.96), Facts(0.3), SURE).reason is Reason.VERIFIED
    # Weak evidence stays what it was, however probable.
    assert decide(evidence(0.99, similarity=0.42), Facts(0.3), SURE).reason is Reason.NOT_SIMILAR


def test_a_lower_threshold_never_undercuts_the_tag_probability_and_a_higher_one_wins():
    lower = Policy(0.3, 0.2, 0.05, tag_probability=0.95)
    assert decide(evidence(probability=0.9), Facts(0.3), lower).reason is Reason.UNSURE
    assert decide(evidence(probability=0.4), Facts(0.3), lower).reason is Reason.UNSURE
    higher = Policy(0.98, 0.2, 0.05, tag_probability=0.95)
    assert higher.tag_floor == 0.98
    assert decide(evidence(probability=0.96), Facts(0.3), higher).reason is \
        Reason.BELOW_THRESHOLD


def test_a_threshold_override_keeps_the_model_files_margins(tiny_model_path):
    model = LandmarkModel.load(tiny_model_path)
    policy = Policy.of(model, threshold=0.7)
    assert policy.threshold == 0.7 and policy.tag_margin == model.evidence["tag_margin"]


def _tensor(image):
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_the_gate_refuses_what_the_softmax_alone_would_tag(tmp_path):
    """A model made here: its reference photos are striped pictures, its ordinary photos are
    noise. A photo of noise unlike anything it learnt still gets a confident softmax, but the
    reference photos do not back it: no tag. A striped picture it never saw is tagged."""
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    classes = [landmark.to_dict() for landmark in gazetteer.values()]
    torch.manual_seed(0)
    net = TinyNet(len(classes)).eval()
    meta = tiny_model_meta(classes, threshold=0.0)
    spec_model = tmp_path / "spec.pt"
    save_model_file(torch.jit.script(net), meta, spec_model)
    spec = LandmarkModel.load(spec_model).preprocess

    def inputs(images):
        return [prepare(_tensor(image), spec)[0] for image in images]

    generator = torch.Generator().manual_seed(1)

    def noise(seed):
        from PIL import Image

        pixels = torch.randint(0, 256, (240, 320, 3), generator=generator, dtype=torch.uint8)
        return Image.fromarray(pixels.numpy())

    references = [(t, seed % len(classes)) for seed, t in
                  enumerate(inputs([picture(seed=s) for s in range(24)]))]
    ordinary = inputs([noise(s) for s in range(12)])
    module, evidence_meta = gated(net, len(classes), references, ordinary,
                                  tag_margin=0.0, suggest_margin=-0.05)
    path = tmp_path / "gated.pt"
    save_model_file(module, {"evidence": evidence_meta, **meta}, path)
    model = LandmarkModel.load(path, "cpu")

    stranger = predict_bytes(model, _tensor(noise(99)), "noise.jpg")
    best = stranger.candidates[0]
    assert best.probability >= model.threshold  # the softmax alone would tag it
    assert stranger.decision.outcome is not Outcome.TAGGED
    assert best.similarity - best.ordinary < 0

    seen_kind = predict_bytes(model, _tensor(picture(seed=40)), "stripes.jpg")
    assert seen_kind.decision.outcome is Outcome.TAGGED, seen_kind.explanation
