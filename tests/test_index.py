import os
import sqlite3
import threading

import pytest
from sqlalchemy import select

from images import FIXTURES
from phototagger.errors import IndexLockedError
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.landmarks import Landmark, read_gazetteer
from postgres_cluster import both_backends


def add_photo(library, session, path, slug, confidence, state="auto"):
    photo = library.photo_for_update(session, path)
    photo.landmark_slug, photo.confidence, photo.tag_state = slug, confidence, state
    session.flush()
    return photo


def test_first_use_migrates_a_real_sqlite_file_in_wal_mode(tmp_path):
    Library(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    connection = sqlite3.connect(tmp_path / "index.sqlite3")
    tables = {row[0] for row in connection.execute("select name from sqlite_master")}
    assert {"photos", "predictions", "models", "runs", "writes", "landmarks",
            "embeddings", "gallery", "alembic_version"} <= tables
    assert connection.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert connection.execute("select version_num from alembic_version").fetchone()[0] == "0010"


@both_backends
def test_find_matches_names_partially_without_case_or_accents(library):
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    accented = Landmark("sacre-coeur", "Basilique du Sacré-Cœur", city="Paris", country="France",
                        country_code="FR")
    with library.session() as session:
        library.ensure_landmarks(session, [*gazetteer.values(), accented])
        add_photo(library, session, "/photos/paris/1.jpg", "eiffel-tower", 0.91)
        add_photo(library, session, "/photos/paris/2.jpg", "sacre-coeur", 0.55)
        add_photo(library, session, "/photos/rome/3.jpg", "colosseum", 0.99)
        add_photo(library, session, "/photos/paris/4.jpg", "eiffel-tower", None, "confirmed")
        add_photo(library, session, "/photos/PARIS/5.jpg", "eiffel-tower", 0.8)
        add_photo(library, session, "/photos/nyc/6.jpg", "statue-of-liberty", 0.9)
        session.commit()

        def paths(**filters):
            return [p.path for p in library.find(session, **filters)]

        assert paths(landmark="EIFFEL") == [
            "/photos/PARIS/5.jpg", "/photos/paris/1.jpg", "/photos/paris/4.jpg"]
        assert paths(landmark="tour eiffel", min_confidence=0.85) == [
            "/photos/paris/1.jpg", "/photos/paris/4.jpg"]
        assert paths(landmark="sacre coeur") == ["/photos/paris/2.jpg"]
        assert paths(landmark="SACRE-COEUR") == ["/photos/paris/2.jpg"]
        assert paths(landmark="sacré-cœur") == ["/photos/paris/2.jpg"]
        assert paths(country="fr", under="/photos/paris") == [
            "/photos/paris/1.jpg", "/photos/paris/2.jpg", "/photos/paris/4.jpg"]
        assert paths(city="rome") == ["/photos/rome/3.jpg"]
        assert paths(country="Italy", landmark="eiffel") == []
        assert paths(country="IT") == ["/photos/rome/3.jpg"]  # a code, not "Un-it-ed States"
        assert paths(country="it") == ["/photos/rome/3.jpg"]
        assert paths(country="ital") == ["/photos/rome/3.jpg"]
        assert paths(country="ance") == []  # names match from the start of a word
        assert paths(country="states") == ["/photos/nyc/6.jpg"]
        assert len(paths(limit=2)) == 2


@both_backends
def test_find_knows_countries_by_alpha3_codes_and_the_names_people_use(library):
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    with library.session() as session:
        library.ensure_landmarks(session, gazetteer.values())
        add_photo(library, session, "/photos/nyc/1.jpg", "statue-of-liberty", 0.9)
        add_photo(library, session, "/photos/istanbul/2.jpg", "hagia-sophia", 0.9)
        add_photo(library, session, "/photos/jerusalem/3.jpg", "dome-of-the-rock", 0.9)
        session.commit()

        def paths(**filters):
            return [p.path for p in library.find(session, **filters)]

        for query in ("USA", "usa", "US", "United States", "United States of America"):
            assert paths(country=query) == ["/photos/nyc/1.jpg"], query
        for query in ("TUR", "Türkiye", "turkiye", "Turkey", "tr"):  # ISO's name, ours
            assert paths(country=query) == ["/photos/istanbul/2.jpg"], query
        assert paths(country="GBR") == paths(country="UK") == []  # known, none in the index
        # Jerusalem's country is disputed: the gazetteer gives the Dome of the Rock none, so
        # no country finds it, and its city does
        for query in ("IL", "ISR", "Israel", "PS", "Palestine"):
            assert paths(country=query) == [], query
        assert paths(city="jerusalem") == ["/photos/jerusalem/3.jpg"]


def test_find_takes_wildcard_characters_literally(library):
    """``%`` and ``_`` (LIKE's wildcards, and punctuation to the folding) name no landmark."""
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    with library.session() as session:
        library.ensure_landmarks(session, gazetteer.values())
        add_photo(library, session, "/photos/paris/1.jpg", "eiffel-tower", 0.91)
        add_photo(library, session, "/photos/rome/2.jpg", "colosseum", 0.99)
        session.commit()
        for text in ("%", "_", "%%", "\\", "-"):
            for field in ("landmark", "country", "city"):
                assert library.find(session, **{field: text}) == [], (field, text)
        assert [p.path for p in library.find(session, landmark="eiffel%")] == [
            "/photos/paris/1.jpg"]


@both_backends
def test_non_utf8_names_keep_their_exact_bytes(library, tmp_path):
    raw_name = b"caf\xe9.jpg"  # Latin-1, not UTF-8
    path = str(tmp_path).encode() + b"/" + raw_name
    with library.session() as session:
        library.photo_for_update(session, path.decode("utf-8", "surrogateescape"))
        session.commit()
        photo = session.scalars(select(orm.Photo)).one()
    assert photo.path.endswith("caf\\xe9.jpg")
    assert photo.fs_path.encode("utf-8", "surrogateescape") == path


@both_backends
def test_second_scan_lock_gives_a_clear_error(library):
    held, release = threading.Event(), threading.Event()

    def hold():
        with library.lock():
            held.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    held.wait(5)
    try:
        with pytest.raises(IndexLockedError, match="another phototagger scan"):
            with library.lock(wait=0.2):
                pass
    finally:
        release.set()
        worker.join()
    with library.lock(wait=1):  # free again once the first scan ends
        pass


def test_indexes_that_differ_only_in_their_extension_have_locks_of_their_own(tmp_path):
    first = Library(f"sqlite:///{tmp_path / 'photos.sqlite3'}")
    second = Library(f"sqlite:///{tmp_path / 'photos.db'}")
    with first.lock(), second.lock(wait=0):
        pass


def test_an_index_made_by_the_first_release_upgrades_keeping_its_photos(tmp_path):
    from alembic import command
    from alembic.config import Config

    import migrations

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    config = Config()
    config.set_main_option("script_location", os.path.dirname(migrations.__file__))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0001")
    connection = sqlite3.connect(tmp_path / "old.sqlite3")
    connection.execute(
        "insert into photos (path, status, first_seen, last_seen) values ('/p/a.jpg', 'ok', "
        "'2026-01-01', '2026-01-01')"
    )
    connection.commit()
    library = Library(url)
    with library.session() as session:
        photo = library.photo_at(session, "/p/a.jpg")
        assert photo.status == "ok" and photo.write_error is None


def test_how_far_a_camera_stood_from_a_landmark():
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    eiffel, liberty = gazetteer["eiffel-tower"], gazetteer["statue-of-liberty"]
    # Paris to New York is 5,837 km along the great circle.
    assert eiffel.distance_from((liberty.latitude, liberty.longitude)) == pytest.approx(5837, 5)
    assert eiffel.seen_from((48.8738, 2.2950))  # from the Arc de Triomphe
    assert not eiffel.seen_from((liberty.latitude, liberty.longitude))
    # Unknown either way: no camera GPS, (0, 0) from a camera without a fix, no gazetteer place.
    assert eiffel.distance_from(None) is None and eiffel.distance_from((0.0, 0.0)) is None
    assert Landmark("somewhere", "Somewhere").seen_from((10.0, 10.0))
