from django.db import migrations


def seed(apps, schema_editor):
    from inference_app.catalog_seed import CATALOG

    CatalogModel = apps.get_model("inference_app", "CatalogModel")
    for entry in CATALOG:
        CatalogModel.objects.update_or_create(model_id=entry["model_id"], defaults=entry)


class Migration(migrations.Migration):
    dependencies = [("inference_app", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
