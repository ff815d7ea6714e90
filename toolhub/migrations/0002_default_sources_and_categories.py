"""The three built-in tool sources and the standard part categories.

Frozen here (not imported from toolhub.sampledata) so later edits to the sample data
cannot change what this migration did.
"""

from django.db import migrations

SOURCES = [
    ("Autoteilepilot parts", "parts", {"limit": 4}),
    ("PDF catalogs", "pdf_catalog", {"limit": 3}),
    ("Knowledge base", "knowledge_base", {"limit": 3}),
]
CATEGORIES = [
    ("brake-pads", "brake pads", "Bremsbeläge", "brake pad, Bremsbelag, Bremsklötze, pads"),
    ("brake-discs", "brake discs", "Bremsscheiben", "brake disc, brake rotors, Bremsscheibe"),
    ("oil-filter", "oil filter", "Ölfilter", "oil filters, Ölfiltereinsatz"),
    ("air-filter", "air filter", "Luftfilter", "engine air filter"),
    ("cabin-filter", "cabin filter", "Innenraumfilter", "pollen filter, Pollenfilter"),
    ("spark-plugs", "spark plugs", "Zündkerzen", "spark plug, Zündkerze"),
    ("wiper-blades", "wiper blades", "Scheibenwischer", "wipers, Wischerblätter, Wischblatt"),
    ("battery", "battery", "Autobatterie", "car battery, Batterie, Starterbatterie"),
    ("shock-absorber", "shock absorber", "Stoßdämpfer", "shocks, dampers, Dämpfer"),
    ("timing-belt-kit", "timing belt kit", "Zahnriemensatz", "timing belt, Zahnriemen"),
    ("clutch-kit", "clutch kit", "Kupplungssatz", "clutch, Kupplung"),
    ("water-pump", "water pump", "Wasserpumpe", "coolant pump, Kühlmittelpumpe"),
]


def create(apps, schema_editor):
    ToolSource = apps.get_model("toolhub", "ToolSource")
    PartCategory = apps.get_model("toolhub", "PartCategory")
    for name, kind, config in SOURCES:
        ToolSource.objects.get_or_create(name=name, defaults={"kind": kind, "config": config})
    for slug, name_en, name_de, synonyms in CATEGORIES:
        PartCategory.objects.get_or_create(slug=slug, defaults={
            "name_en": name_en, "name_de": name_de, "synonyms": synonyms})


class Migration(migrations.Migration):
    dependencies = [("toolhub", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
