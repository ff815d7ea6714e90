"""CSV import: good, bad and duplicate rows; idempotent; all or nothing; admin and command."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from calls import services as call_services
from toolhub.catalog import parts_import_csv
from toolhub.models import Part, Vehicle

pytestmark = pytest.mark.django_db

HEADER = ("part_number,name,name_de,category,brand,oem_numbers,price,currency,stock,make,"
          "model,generation,year_from,year_to,vehicle_aliases\n")
GOOD = HEADER + (
    "TP-1,ATE brake pads front axle,ATE Bremsbeläge Vorderachse,brake-pads,ATE,"
    "5Q0698151;5Q0698151A,54.90,EUR,4,Volkswagen,Golf,VII,2012,2020,\n"
    "TP-1,ATE brake pads front axle,ATE Bremsbeläge Vorderachse,brake-pads,ATE,"
    "5Q0698151;5Q0698151A,54.90,EUR,4,Audi,A3,8V,2012,2020,\n"
    "TP-2,Mann oil filter,Mann Ölfilter,oil-filter,Mann-Filter,,\"12,50\",EUR,0,"
    "Volkswagen,Golf,VII,2012,2020,\n"
)


def test_good_rows_create_parts_vehicles_and_fitments(defaults: None) -> None:
    report = parts_import_csv(text=GOOD)
    assert report.ok and (report.rows, report.created, report.vehicles_created) == (3, 2, 2)
    pads = Part.objects.get(part_number="TP-1")
    assert pads.price == Decimal("54.90") and pads.stock == 4
    assert pads.oem_numbers == ["5Q0698151", "5Q0698151A"]
    assert sorted(str(v) for v in pads.vehicles.all()) == [
        "Audi A3 8V (2012-2020)", "Volkswagen Golf VII (2012-2020)"]
    assert Part.objects.get(part_number="TP-2").price == Decimal("12.50")  # decimal comma


def test_importing_again_changes_nothing_and_updates_what_changed(defaults: None) -> None:
    parts_import_csv(text=GOOD)
    again = parts_import_csv(text=GOOD)
    assert (again.created, again.updated, again.unchanged, again.vehicles_created) == (0, 0, 2, 0)
    assert Part.objects.count() == 2 and Vehicle.objects.count() == 2
    cheaper = GOOD.replace("54.90", "49.90").replace(
        "TP-1,ATE brake pads front axle,ATE Bremsbeläge Vorderachse,brake-pads,ATE,"
        "5Q0698151;5Q0698151A,49.90,EUR,4,Audi,A3,8V,2012,2020,\n", "")
    report = parts_import_csv(text=cheaper)
    assert (report.updated, report.unchanged) == (1, 1)
    pads = Part.objects.get(part_number="TP-1")
    assert pads.price == Decimal("49.90")
    assert [str(v) for v in pads.vehicles.all()] == ["Volkswagen Golf VII (2012-2020)"]


def test_duplicate_rows_are_counted_once(defaults: None) -> None:
    lines = GOOD.splitlines(keepends=True)
    report = parts_import_csv(text="".join([*lines, lines[1], lines[1]]))
    assert report.ok and report.duplicates == 2 and report.created == 2


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(defaults: None) -> None:
    bad = GOOD + (
        "TP-3,Spark plug,,spark-plugs,NGK,,abc,EUR,1,BMW,3 Series,F30,2012,2019,\n"
        "TP-4,Wiper,,wipers-deluxe,Bosch,,9.90,EUR,1,BMW,3 Series,F30,2012,2019,\n"
        "TP-5,,,battery,Varta,,99,EUR,1,BMW,3 Series,F30,2012,2019,\n"
        "TP-6,Battery,,battery,Varta,,99,EUR,-2,BMW,3 Series,F30,2012,2019,\n"
        "TP-7,Battery,,battery,Varta,,99,EUR,1,BMW,3 Series,F30,2020,2012,\n"
        "TP-1,ATE brake pads,ATE Bremsbeläge,brake-pads,ATE,,59.90,EUR,4,BMW,3 Series,F30,"
        "2012,2019,\n"
    )
    report = parts_import_csv(text=bad)
    assert not report.ok
    assert report.errors == [
        "line 5: price 'abc' is not a number",
        "line 6: unknown category 'wipers-deluxe'",
        "line 7: missing name",
        "line 8: stock '-2' is not a whole number >= 0",
        "line 9: year_from is after year_to",
        "line 10: part TP-1 differs from line 2",
    ]
    assert Part.objects.count() == 0 and Vehicle.objects.count() == 0
    assert report.summary().startswith("nothing imported: 6 bad row(s) of 9")


def test_a_file_without_the_required_columns_is_refused(defaults: None) -> None:
    report = parts_import_csv(text="number,price\nTP-1,5\n")
    assert report.errors == [
        "header: missing column(s) part_number, name, category, make, model"]


def test_management_command(defaults: None, tmp_path: object) -> None:
    path = tmp_path / "parts.csv"  # type: ignore[operator]
    path.write_text(GOOD, encoding="utf-8")
    out = io.StringIO()
    call_command("toolhub_import_parts", str(path), stdout=out)
    assert "2 parts created" in out.getvalue()
    path.write_text(GOOD.replace("54.90", "oops"), encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("toolhub_import_parts", str(path), stderr=err)
    assert "line 2: price 'oops' is not a number" in err.getvalue()


@pytest.fixture
def supervisor_client(defaults: None) -> Client:
    _, password = call_services.supervisor_ensure(username="sue")
    client = Client()
    assert client.login(username="sue", password=password)
    return client


def test_admin_import_shows_row_errors_then_imports(supervisor_client: Client) -> None:
    url = reverse("admin:toolhub_part_import_csv")
    assert supervisor_client.get(reverse("admin:toolhub_part_changelist")).status_code == 200
    assert url in supervisor_client.get(reverse("admin:toolhub_part_changelist")).content.decode()
    response = supervisor_client.post(url, {"file": io.BytesIO(
        GOOD.replace("54.90", "x").encode())})
    assert response.status_code == 200
    assert "line 2: price &#x27;x&#x27; is not a number" in response.content.decode()
    assert Part.objects.count() == 0
    upload = io.BytesIO(GOOD.encode())
    upload.name = "parts.csv"
    response = supervisor_client.post(url, {"file": upload}, follow=True)
    assert "2 parts created" in response.content.decode()
    assert Part.objects.count() == 2


def test_admin_import_refuses_a_file_that_is_not_utf8(supervisor_client: Client) -> None:
    upload = io.BytesIO(GOOD.encode("utf-16"))
    upload.name = "parts.csv"
    response = supervisor_client.post(reverse("admin:toolhub_part_import_csv"),
                                      {"file": upload})
    assert "not UTF-8 text" in response.content.decode() and Part.objects.count() == 0


def test_supervisors_manage_toolhub_but_cannot_add_sources(defaults: None) -> None:
    from django.contrib.auth.models import Group

    group = Group.objects.get(name=call_services.SUPERVISORS_GROUP)
    codenames = set(group.permissions.filter(content_type__app_label="toolhub")
                    .values_list("codename", flat=True))
    assert {"change_toolsource", "add_part", "delete_part", "add_catalogdocument"} <= codenames
    assert "add_toolsource" not in codenames and "delete_toolsource" not in codenames
