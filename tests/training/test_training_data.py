from pathlib import Path

import pytest
from synthetic import make_dataset, write_photo

from phototagger.errors import ConfigError
from training.data import folder_slug, scan_folder, stratified_split


def test_folder_names_udacity_style_and_plain():
    assert folder_slug("14.Eiffel_Tower") == ("eiffel-tower", "Eiffel Tower")
    assert folder_slug("eiffel-tower") == ("eiffel-tower", "Eiffel Tower")
    assert folder_slug("Hagia Sophia") == ("hagia-sophia", "Hagia Sophia")


def test_udacity_folders_match_the_gazetteer(tmp_path: Path):
    root = make_dataset(tmp_path, per_class=2, folders={
        "colosseum": "00.Colosseum", "eiffel-tower": "01.Eiffel_Tower",
        "hagia-sophia": "02.Ayasofya"})
    dataset = scan_folder(root)
    assert [c.slug for c in dataset.classes] == ["colosseum", "eiffel-tower", "hagia-sophia"]
    assert dataset.classes[1].city == "Paris"
    assert dataset.unmatched == []


def test_landmark_missing_from_gazetteer_is_kept_without_location(tmp_path: Path):
    root = make_dataset(tmp_path, per_class=2)
    write_photo(root / "07.Golden_Gate_Bridge" / "a.jpg", (90, 90, 90), 1)
    dataset = scan_folder(root)
    unknown = dataset.classes[[c.slug for c in dataset.classes].index("golden-gate-bridge")]
    assert unknown.name == "Golden Gate Bridge" and not unknown.has_location
    assert dataset.unmatched == ["golden-gate-bridge"]
    assert dataset.summary()["not_in_gazetteer"] == ["golden-gate-bridge"]


@pytest.mark.parametrize("layout", ["missing", "empty", "one-class", "no-images"])
def test_broken_or_empty_folder_is_a_clear_error(tmp_path: Path, layout: str):
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "one-class":
        write_photo(root / "colosseum" / "a.jpg", (1, 2, 3), 0)
    if layout == "no-images":
        (root / "colosseum").mkdir()
        (root / "colosseum" / "notes.txt").write_text("no photos here")
    with pytest.raises(ConfigError, match="data folder not found|at least two sub-folders"):
        scan_folder(root)


def test_stratified_split_is_fixed_by_seed_and_keeps_every_class(tmp_path: Path):
    samples = scan_folder(make_dataset(tmp_path)).samples
    train, val = stratified_split(samples, 0.25, seed=3)
    assert (train, val) == stratified_split(samples, 0.25, seed=3)
    assert stratified_split(samples, 0.25, seed=4)[1] != val
    assert sorted(train + val) == list(range(len(samples)))
    assert [sum(samples[i][1] == c for i in val) for c in range(3)] == [2, 2, 2]
