"""The Find tab: a probe among photos, and photos grouped by person (LFW photos, the folder
names as the truth)."""

from __future__ import annotations

import pytest
from face_pairs import lfw_photo

from faceres.app import find_tab
from faceres.settings import data_dir
from tests.test_app import has_default

needs_identity = pytest.mark.skipif(
    not has_default("identity"), reason="no default identity model in the registry yet"
)


def lfw_people(count: int) -> list:
    """The first image of the first `count` LFW people other than Aaron Peirsol (the probe)."""
    root = data_dir()
    folder = root / "lfw" / "lfw-deepfunneled" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("LFW is not in FACERES_DATA: the Find test needs photos of real people")
    people = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name != "Aaron_Peirsol"]
    return [sorted(p.iterdir())[0] for p in people[:count]]


@needs_identity
def test_the_probes_person_comes_first():
    probe = lfw_photo("Aaron_Peirsol", 3)
    photos = [*lfw_people(4), lfw_photo("Aaron_Peirsol", 1), *lfw_people(9)[4:]]
    html, details = find_tab.find_person(str(probe), [str(p) for p in photos])
    best = details["matches"][0]
    assert best["photo"] == 5 and best["verdict"] == "same"  # Aaron_Peirsol_0001
    assert [m["verdict"] for m in details["matches"][1:]] == ["different"] * 4
    assert details["faces_searched"] >= 10 and html.count("<figure") == 5


@needs_identity
def test_grouping_puts_one_person_together():
    photos = [lfw_photo("Aaron_Peirsol", n) for n in (1, 2, 3)] + lfw_people(4)
    html, details = find_tab.group_photos([str(p) for p in photos])
    (person, *_), unassigned = details["groups"][:-1], details["groups"][-1]
    assert sorted(f["photo"] for f in person["faces"]) == [1, 2, 3]
    assert unassigned["group"].startswith("unassigned") and len(unassigned["faces"]) == 4
    assert "person 1" in html


@needs_identity
def test_bad_input_is_a_message():
    import gradio as gr

    with pytest.raises(gr.Error, match="Add some photos"):
        find_tab.find_person(str(lfw_photo("Aaron_Peirsol", 1)), [])
    with pytest.raises(gr.Error, match="At most 30 photos"):
        find_tab.group_photos([str(lfw_photo("Aaron_Peirsol", 1))] * 31)


@needs_identity
def test_an_unreadable_photo_is_skipped_with_a_note(tmp_path):
    """One corrupt file among the photos: the others are searched and grouped, the bad one is
    named in a note, and the photos keep their upload numbers (the probe's match is photo 3)."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(lfw_photo("Aaron_Peirsol", 1).read_bytes()[:300])
    probe = lfw_photo("Aaron_Peirsol", 3)
    photos = [*lfw_people(1), broken, lfw_photo("Aaron_Peirsol", 1)]
    html, details = find_tab.find_person(str(probe), [str(p) for p in photos])
    assert details["matches"][0]["photo"] == 3 and details["matches"][0]["verdict"] == "same"
    assert len(details["skipped"]) == 1 and details["skipped"][0].startswith("photo 2")
    assert "photo 2" in html and "skipped" in html
    html, details = find_tab.group_photos([str(p) for p in photos])
    assert len(details["skipped"]) == 1 and "skipped" in html
