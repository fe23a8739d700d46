"""Against a real Orthanc (DICOMweb plugin, authentication on): import series as cases, annotate,
export SEG, STOW it, find it with QIDO, read it back equal; and the failures: bad URL, refused
credentials, a server killed or cut off mid-transfer (clear errors, no partial case, resumption).
"""
from __future__ import annotations

import copy
import io
import json

import numpy as np
import pydicom
import pytest
from pacs_orthanc import PASSWORD, USER, CuttingProxy, start_orthanc, with_fresh_uids

pytest.importorskip("dicomweb_client")
pytest.importorskip("highdicom")
from DicomTeamAnnotateLib.pacs import PacsError  # noqa: E402
from DicomTeamAnnotateLib.pacs import dicomweb as dw  # noqa: E402
from DicomTeamAnnotateLib.store.dicomweb_import import import_dicomweb  # noqa: E402
from DicomTeamAnnotateLib.store.verify import verify_project  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*person name:UserWarning")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ct_in_pacs(orthanc, ct_dicom_dir, tmp_path_factory):
    """The shared CT (blank UIDs in the original) with fresh UIDs, stored by STOW-RS."""
    folder = tmp_path_factory.mktemp("ct-fresh-uids")
    files = with_fresh_uids(ct_dicom_dir, folder, patient_id="PACS-CT-001")
    sops = dw.stow(orthanc.client(), [pydicom.dcmread(f) for f in files])
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert len(sops) == len(files)
    return {"folder": folder, "study": first.StudyInstanceUID, "series": first.SeriesInstanceUID}


def _phantom_in_pacs(server, tmp_path, patient_id, slices=24):
    from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom

    ph = make_phantom(seed=5, shape=(slices, 40, 40), patient_id=patient_id)
    files = write_phantom_dicom(ph, tmp_path / f"{patient_id}-dicom")
    dw.stow(server.client(), [pydicom.dcmread(f) for f in files])
    return ph, pydicom.dcmread(files[0], stop_before_pixels=True)


@pytest.fixture
def project(tmp_path, ct_organs_path):
    from DicomTeamAnnotateLib.store import admin

    folder = tmp_path / "project"
    admin.init_project(folder, "pacs", ct_organs_path.with_name("organs.json"))
    admin.add_member(folder, "chief", "reviewer")
    return folder


def _cases(project_dir):
    from DicomTeamAnnotateLib.store.folder import FolderCatalog

    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    return catalog.cases()


def _run_cli(argv, stdout=None):
    """The real `dicomteam` entry point: (exit code, what it printed to stderr); stdout into ``stdout``."""
    import contextlib
    import io

    from DicomTeamAnnotateLib.cli.main import main

    err, out = io.StringIO(), stdout if stdout is not None else io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def _temp_files(folder):
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# ----- the round trip --------------------------------------------------------------------------------
def test_pacs_round_trip(orthanc, ct_in_pacs, project, ct_organs_path, tmp_path):
    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume
    from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
    from DicomTeamAnnotateLib.io.volumes import read_volume
    from DicomTeamAnnotateLib.pacs.seg_import import read_seg
    from DicomTeamAnnotateLib.store.interface import open_store
    from DicomTeamAnnotateLib.store.seg_exchange import export_case_seg, find_seg_series, import_seg_version

    cache = tmp_path / "cache"
    # 1. import the series as a case (the CLI), twice: the second run changes nothing
    for expected in ("added", "exists"):
        printed = io.StringIO()
        rc, err = _run_cli(["project", "import-dicomweb", str(project), "--url", orthanc.url, "--user", USER,
                            "--password", PASSWORD, "--study", ct_in_pacs["study"], "--query", "Modality=CT",
                            "--cache", str(cache), "--json", "--no-progress"], stdout=printed)
        assert rc == 0, err
        assert [r["status"] for r in json.loads(printed.getvalue())] == [expected]
    cases = _cases(project)
    assert len(cases) == 1 and cases[0]["patient_id"] == "PACS-CT-001"
    case_id = cases[0]["case_id"]
    assert ct_in_pacs["series"] in cases[0]["source"]  # the PACS location is kept for the SEG's references

    store = open_store(str(project), "chief")
    image = read_volume(store.fetch_image(case_id, tmp_path / "image"))
    original = load_dicom_volume(ct_in_pacs["folder"])
    assert image.geometry.same_grid(original.geometry)
    assert np.array_equal(image.array, original.array)

    # 2. annotate (the organ label map on the case grid) and adjudicate
    organs = read_segmentation(ct_organs_path, reference=image.geometry)
    final = store.push_version(case_id, write_seg_nrrd(organs, tmp_path / "final.seg.nrrd"), kind="adjudicated",
                               message="final")
    # a later push from a stale parent is kept but flagged: it is never exported as the final version
    stale_seg = copy.deepcopy(organs)
    stale_seg.segments = stale_seg.segments[:-1]
    stale = store.push_version(case_id, write_seg_nrrd(stale_seg, tmp_path / "stale.seg.nrrd"), kind="adjudicated",
                               parent=None, message="from another machine")
    assert stale["conflict"] and stale["id"] != final["id"]

    # 3. export the final version as SEG and STOW it to the PACS (the source series: from the case record)
    result = export_case_seg(store, case_id, stow_url=orthanc.url, user=USER, password=PASSWORD,
                             cache_dir=cache, content_creator="chief")
    assert result["stowed"] and result["version_id"] == final["id"]
    assert result["study_instance_uid"] == ct_in_pacs["study"]
    # the same from the command line, to a file: the store's case and version, its series from the PACS
    rc, err = _run_cli(["export-seg", "--store", str(project), "--store-user", "chief", "--case", case_id,
                        "--out", str(tmp_path / "cli-seg.dcm"), "--user", USER, "--password", PASSWORD,
                        "--cache", str(cache)])
    assert rc == 0, err
    cli_seg = pydicom.dcmread(tmp_path / "cli-seg.dcm")
    assert cli_seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_in_pacs["series"]
    assert len(cli_seg.SegmentSequence) == len(organs.segments)
    rc, err = _run_cli(["export-seg", "--store", str(project), "--store-user", "chief", "--out", "x.dcm"])
    assert rc == 2 and "--store needs --case" in err

    # 4. find it with QIDO (by the series it references), retrieve it, read it back equal
    client = orthanc.client()
    found = find_seg_series(client, ct_in_pacs["study"], ct_in_pacs["series"])
    assert [s.series_uid for s in found] == [result["series_instance_uid"]]
    assert found[0].modality == "SEG"
    seg_files = dw.retrieve_series(client, ct_in_pacs["study"], found[0].series_uid, tmp_path / "seg-cache").files
    assert len(seg_files) == 1
    labels = store.project()["labels"]
    values = {s.name: s.label_value for s in organs.segments}
    for reader in ("highdicom", "pydicom"):
        back = read_seg(seg_files[0], image.geometry, reader=reader, labels=labels)
        assert back.geometry.same_grid(image.geometry), reader
        assert {s.name: s.label_value for s in back.segments} == values, reader
        assert np.array_equal(back.to_labelmap(values), organs.to_labelmap(values)), reader

    # 5. the SEG found in the PACS becomes an annotation version (e.g. a prior read)
    version = import_seg_version(store, case_id, seg_files[0])
    assert version["kind"] == "annotation" and version["meta"]["sop_instance_uid"] == result["sop_instance_uid"]
    imported = read_segmentation(store.fetch_version(version["id"], tmp_path / "imported.seg.nrrd"))
    assert imported.geometry.same_grid(image.geometry)
    assert np.array_equal(imported.to_labelmap(values), organs.to_labelmap(values))

    # 6. refused, nothing pushed: a SEG made on another series; a SEG whose voxels miss the case image
    n_versions = len(store.list_versions(case_id))
    other = pydicom.dcmread(seg_files[0])
    other.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    other.save_as(tmp_path / "other-series.dcm")
    with pytest.raises(PacsError, match="made on series 1.2.826.0.1.3680043.8.498.1"):
        import_seg_version(store, case_id, tmp_path / "other-series.dcm")
    away = pydicom.dcmread(seg_files[0])
    for frame in away.PerFrameFunctionalGroupsSequence:
        position = frame.PlanePositionSequence[0]
        position.ImagePositionPatient = [float(v) + (1000.0 if n == 2 else 0.0)
                                         for n, v in enumerate(position.ImagePositionPatient)]
    away.save_as(tmp_path / "elsewhere.dcm")
    with pytest.raises(PacsError, match="none of the SEG's segmented voxels lies on the image"):
        import_seg_version(store, case_id, tmp_path / "elsewhere.dcm", reader="pydicom")
    assert len(store.list_versions(case_id)) == n_versions


def test_query_filters(orthanc, ct_in_pacs, tmp_path):
    client = orthanc.client()
    assert [s.series_uid for s in dw.query_series(client, patient="PACS-CT-001")] == [ct_in_pacs["series"]]
    assert dw.query_series(client, patient="PACS-CT-001", query=["Modality=MR"]) == []
    assert dw.query_series(client, series=ct_in_pacs["series"])[0].instances == 20
    with pytest.raises(PacsError, match="neither a DICOM keyword"):
        dw.query_series(client, query=["NotAKeyword=1"])


# ----- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("url,password,message", [
    ("not a url", PASSWORD, "bad DICOMweb URL"),
    ("http://127.0.0.1:9/dicom-web", PASSWORD, "Connection refused"),
    (None, "wrong-password", r"refused the credentials \(HTTP 401\)"),
    ("{base}/no-dicomweb-here", PASSWORD, r"not found .*HTTP 404"),
    ("http://alice:s3cret@127.0.0.1:9/dicom-web", PASSWORD, r"'http://\*\*\*@127\.0\.0\.1:9/dicom-web' carries credentials"),
], ids=["malformed", "unreachable", "credentials", "wrong-root", "password-in-url"])
def test_import_errors_are_clear_and_add_nothing(orthanc, ct_in_pacs, project, tmp_path, url, password, message):
    url = (url or orthanc.url).replace("{base}", orthanc.base)
    rc, err = _run_cli(["project", "import-dicomweb", str(project), "--url", url, "--user", USER,
                        "--password", password, "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert rc == 2
    assert __import__("re").search(message, err), err
    assert "s3cret" not in err  # a password typed into the URL is never echoed (nor stored: no case)
    assert _cases(project) == []


def test_no_match_and_no_project(orthanc, ct_in_pacs, project, tmp_path):
    rc, err = _run_cli(["project", "import-dicomweb", str(project), "--url", orthanc.url, "--user", USER,
                        "--password", PASSWORD, "--patient", "NOBODY", "--no-progress"])
    assert rc == 2 and "no image series" in err
    rc, err = _run_cli(["project", "import-dicomweb", str(tmp_path / "nothing"), "--url", orthanc.url, "--user", USER,
                        "--password", PASSWORD, "--no-progress"])
    assert rc == 2 and "project" in err


def test_cut_then_killed_mid_transfer_leaves_no_case_and_resumes(tmp_path, project):
    """A stream cut mid-series, then the server killed during the resumed transfer, then back:
    each failure is a clear error with no case added; each rerun fetches only what is missing."""
    server = start_orthanc(tmp_path / "orthanc-killed")
    try:
        phantom, first = _phantom_in_pacs(server, tmp_path, "KILLED-001", slices=24)
        instance_bytes = next((tmp_path / "KILLED-001-dicom").glob("*.dcm")).stat().st_size
        cache = tmp_path / "cache"
        series_dir = dw.series_cache_folder(first.StudyInstanceUID, first.SeriesInstanceUID, cache)

        # 1. the connection dies half-way through the 3rd instance of the streamed series
        proxy = CuttingProxy(server.http_port, cut_after=int(2.5 * instance_bytes))
        try:
            # the cut body ends the stream: a truncated last part (caught by the pixel data check) or a broken read
            cut = r"WADO-RS retrieve of series .*(cut short|closed|reset|damaged instance).*rerun the same command"
            with pytest.raises(PacsError, match=cut):
                import_dicomweb(project, proxy.url, user=USER, password=PASSWORD, cache_dir=cache)
        finally:
            proxy.close()
        assert _cases(project) == []
        assert len(list(series_dir.glob("*.dcm"))) == 2 and not _temp_files(cache)

        # 2. the resumed transfer (instance by instance) loses the server: SIGKILL after 7 instances
        def kill_at_seven(series_index, series_count, done, total):
            if done == 7:
                server.kill()

        with pytest.raises(PacsError, match=r"WADO-RS retrieve of instance .*Connection refused"):
            import_dicomweb(project, server.url, user=USER, password=PASSWORD, cache_dir=cache,
                            callback=kill_at_seven)
        assert _cases(project) == []
        assert len(list(series_dir.glob("*.dcm"))) == 7 and not _temp_files(cache)
        assert not (series_dir / dw.COMPLETE_MARKER).exists()

        # 3. the server is back: the rerun fetches only the 17 missing instances
        server.start()
        results = import_dicomweb(project, server.url, user=USER, password=PASSWORD, cache_dir=cache)
        assert [(r["status"], r["fetched"], r["skipped"]) for r in results] == [("added", 17, 7)]
        _assert_case_is_phantom(project, results[0]["case_id"], phantom, tmp_path)
    finally:
        server.stop()


def test_damaged_cached_instance_is_fetched_again(orthanc, project, tmp_path):
    phantom, first = _phantom_in_pacs(orthanc, tmp_path, "DAMAGED-001", slices=6)
    cache = tmp_path / "cache"
    retrieved = dw.retrieve_series(orthanc.client(), first.StudyInstanceUID, first.SeriesInstanceUID, cache)
    (retrieved.folder / dw.COMPLETE_MARKER).unlink()  # as after a crash before the marker was written
    victim = retrieved.files[3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # a torn write
    results = import_dicomweb(project, orthanc.url, patient="DAMAGED-001", user=USER, password=PASSWORD,
                              cache_dir=cache)
    assert [(r["status"], r["fetched"], r["skipped"]) for r in results] == [("added", 1, 5)]
    _assert_case_is_phantom(project, results[0]["case_id"], phantom, tmp_path)


def test_server_that_hangs_times_out(orthanc, project, tmp_path):
    import os
    import signal

    os.kill(orthanc.process.pid, signal.SIGSTOP)
    try:
        client = dw.connect(orthanc.url, USER, PASSWORD, timeout=(1.0, 1.0))
        with pytest.raises(PacsError, match="did not answer in time"):
            import_dicomweb(project, orthanc.url, user=USER, cache_dir=tmp_path / "cache", client=client)
    finally:
        os.kill(orthanc.process.pid, signal.SIGCONT)
    assert _cases(project) == []


def _assert_case_is_phantom(project, case_id, phantom, tmp_path):
    from DicomTeamAnnotateLib.io.volumes import read_volume
    from DicomTeamAnnotateLib.store.interface import open_store

    image = read_volume(open_store(str(project), "chief").fetch_image(case_id, tmp_path / "check"))
    assert image.geometry.same_grid(phantom.volume.geometry)
    assert np.array_equal(image.array, phantom.volume.array)


def test_stow_with_wrong_credentials_is_refused(orthanc, ct_in_pacs, ct_organs_path, tmp_path):
    rc, err = _run_cli(["export-seg", "--segmentation", str(ct_organs_path), "--source", str(ct_in_pacs["folder"]),
                        "--stow", orthanc.url, "--user", USER, "--password", "nope"])
    assert rc == 2 and "STOW-RS" in err and "HTTP 401" in err


def test_import_seg_from_the_pacs_by_cli(orthanc, tmp_path):
    """export-seg --stow, then import-seg --url/--study (the only SEG of the study) to a .seg.nrrd."""
    from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd

    phantom, first = _phantom_in_pacs(orthanc, tmp_path, "SEGCLI-001", slices=8)
    seg = phantom.segmentation()
    write_seg_nrrd(seg, tmp_path / "truth.seg.nrrd")
    rc, err = _run_cli(["export-seg", "--segmentation", str(tmp_path / "truth.seg.nrrd"),
                        "--source", str(tmp_path / "SEGCLI-001-dicom"), "--stow", orthanc.url, "--user", USER,
                        "--password", PASSWORD, "--fractional", "--json"])
    assert rc == 0, err
    rc, err = _run_cli(["import-seg", "--url", orthanc.url, "--study", first.StudyInstanceUID, "--user", USER,
                        "--password", PASSWORD, "--source", str(tmp_path / "SEGCLI-001-dicom"),
                        "--reader", "pydicom", "--out", str(tmp_path / "back.seg.nrrd")])
    assert rc == 0, err
    back = read_segmentation(tmp_path / "back.seg.nrrd")
    values = {s.name: s.label_value for s in seg.segments}
    assert back.geometry.same_grid(seg.geometry)
    assert np.array_equal(back.to_labelmap(values), seg.to_labelmap(values))


def test_reference_mode_records_the_location_and_fetches_on_demand(orthanc, tmp_path, project, monkeypatch):
    import requests
    from store_support import ThreadServer

    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
    from DicomTeamAnnotateLib.io.volumes import read_volume
    from DicomTeamAnnotateLib.pacs.reference import PacsReference, load_reference_volume
    from DicomTeamAnnotateLib.store import StoreError, admin, open_store
    from DicomTeamAnnotateLib.store.seg_exchange import export_case_seg, find_seg_series

    phantom, first = _phantom_in_pacs(orthanc, tmp_path, "REF-001", slices=6)
    ref = PacsReference(orthanc.url, first.StudyInstanceUID, first.SeriesInstanceUID, user=USER)
    assert PacsReference.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    # fetched on demand into an empty cache, then served from the cache while the server is unreachable
    cache = tmp_path / "ref-cache"
    volume = load_reference_volume(ref, password=PASSWORD, cache_dir=cache)
    assert np.array_equal(volume.array, phantom.volume.array) and volume.geometry.same_grid(phantom.volume.geometry)
    offline = PacsReference("http://127.0.0.1:9/dicom-web", ref.study_uid, ref.series_uid)
    assert np.array_equal(load_reference_volume(offline, cache_dir=cache).array, phantom.volume.array)
    with pytest.raises(PacsError, match="Connection refused"):
        load_reference_volume(offline, cache_dir=tmp_path / "empty-cache")

    # 1. `project import-dicomweb --reference`: the project keeps the location and the grid, no pixels
    rc, err = _run_cli(["project", "import-dicomweb", str(project), "--url", orthanc.url, "--user", USER,
                        "--password", PASSWORD, "--patient", "REF-001", "--reference",
                        "--cache", str(tmp_path / "import-cache"), "--json", "--no-progress"])
    assert rc == 0, err
    (case,) = _cases(project)
    case_id = case["case_id"]
    assert case["reference"] == ref.to_dict()  # kind, url, UIDs and the user name; never a password
    assert case["image_sha256"] is None and not [p for p in (project / "blobs").rglob("*") if p.is_file()]
    assert Geometry.from_dict(case["geometry"]).same_grid(phantom.volume.geometry)
    assert verify_project(project) == []

    # 2. the folder store fetches the pixels from the PACS on demand, with this machine's credentials
    monkeypatch.setenv("DICOMTEAM_CACHE", str(tmp_path / "folder-cache"))
    monkeypatch.setenv("DICOMWEB_PASSWORD", PASSWORD)
    chief = open_store(str(project), "chief")
    assert chief.get_case(case_id)["reference"] == ref.to_dict()
    image = read_volume(chief.fetch_image(case_id, tmp_path / "folder-image"))
    assert np.array_equal(image.array, phantom.volume.array) and image.geometry.same_grid(phantom.volume.geometry)

    # 3. over HTTP the server has no pixels to serve (a clear 404): the client fetches them from the PACS
    token = admin.add_member(project, "chief", "reviewer")
    server = ThreadServer(project)
    try:
        remote = open_store(server.url, "chief", token, cache=tmp_path / "http-cache")
        assert remote.get_case(case_id)["reference"] == ref.to_dict()
        r = requests.get(f"{server.url}/api/v1/cases/{case_id}/image", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
        assert r.status_code == 404 and "reference to a PACS series" in r.json()["detail"]
        image = read_volume(remote.fetch_image(case_id, tmp_path / "http-image"))
        assert np.array_equal(image.array, phantom.volume.array) and image.geometry.same_grid(phantom.volume.geometry)
        assert list((tmp_path / "http-cache" / "dicomweb").rglob("*.dcm"))  # this client's own cache

        # 4. a final version on the case grid, exported as SEG against the series the case references
        seg = phantom.segmentation()
        final = remote.push_version(case_id, write_seg_nrrd(seg, tmp_path / "final.seg.nrrd"), kind="adjudicated")
        result = export_case_seg(remote, case_id, stow_url=orthanc.url, user=USER, password=PASSWORD,
                                 cache_dir=tmp_path / "http-cache" / "dicomweb")
        assert result["stowed"] and result["version_id"] == final["id"]
    finally:
        server.stop()
    found = find_seg_series(orthanc.client(), first.StudyInstanceUID, first.SeriesInstanceUID)
    assert [s.series_uid for s in found] == [result["series_instance_uid"]]

    # 5. refused credentials: a clear store error, nothing written
    monkeypatch.setenv("DICOMTEAM_CACHE", str(tmp_path / "denied-cache"))
    monkeypatch.setenv("DICOMWEB_PASSWORD", "wrong-password")
    with pytest.raises(StoreError, match=r"lives in the PACS .*refused the credentials \(HTTP 401\)"):
        open_store(str(project), "chief").fetch_image(case_id, tmp_path / "denied")
    assert not (tmp_path / "denied").exists() or not list((tmp_path / "denied").iterdir())
    with pytest.raises(StoreError, match="never stores a PACS password"):
        admin.add_case(project, "leaky", volume, "P", reference={**ref.to_dict(), "password": PASSWORD})

    # 6. the series changed in the PACS (an instance deleted): refused, not a shorter image under the annotations
    auth = (USER, PASSWORD)
    found = requests.post(f"{orthanc.base}/tools/lookup", data=str(first.SOPInstanceUID), auth=auth, timeout=10)
    requests.delete(f"{orthanc.base}/instances/{found.json()[0]['ID']}", auth=auth, timeout=10).raise_for_status()
    monkeypatch.setenv("DICOMTEAM_CACHE", str(tmp_path / "changed-cache"))
    monkeypatch.setenv("DICOMWEB_PASSWORD", PASSWORD)
    with pytest.raises(StoreError, match=r"no longer the image the project recorded \(size"):
        open_store(str(project), "chief").fetch_image(case_id, tmp_path / "changed")
