"""Count the output bytes replaced to store a job's output as text; output fields store any str.

The field class change is Python only (no SQL): NUL and lone surrogates are replaced on the way in.
"""

import container_manager.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('container_manager', '0002_queue_notify'),
    ]

    operations = [
        migrations.AddField(
            model_name='containerjob',
            name='stderr_replaced_bytes',
            field=models.BigIntegerField(default=0, help_text='NUL and invalid UTF-8 bytes of stderr replaced to store it as text.'),
        ),
        migrations.AddField(
            model_name='containerjob',
            name='stdout_replaced_bytes',
            field=models.BigIntegerField(default=0, help_text='NUL and invalid UTF-8 bytes of stdout replaced to store it as text.'),
        ),
        migrations.AlterField(
            model_name='containerjob',
            name='clean_output',
            field=container_manager.fields.StorableTextField(blank=True),
        ),
        migrations.AlterField(
            model_name='containerjob',
            name='docker_log',
            field=container_manager.fields.StorableTextField(blank=True, help_text='Executor and lifecycle events.'),
        ),
        migrations.AlterField(
            model_name='containerjob',
            name='last_error',
            field=container_manager.fields.StorableTextField(blank=True),
        ),
        migrations.AlterField(
            model_name='containerjob',
            name='stderr_log',
            field=container_manager.fields.StorableTextField(blank=True),
        ),
        migrations.AlterField(
            model_name='containerjob',
            name='stdout_log',
            field=container_manager.fields.StorableTextField(blank=True),
        ),
    ]
