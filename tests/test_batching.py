"""The studio's default batch order (grouped by length) trains the same samples each epoch as random order."""

from collections import Counter


from studio.core import settings_input, trl_args
from studio.core.config import Settings, TrainingSettings
from studio.models import hardware, models
from studio.data import data, tokenized


def epoch_samples(tiny_model_dir, tmp_path, strategy):
    from trl import SFTTrainer

    settings, _ = settings_input.apply_overrides(Settings(), [f"model_name_or_path={tiny_model_dir}",
                                                      f"train_sampling_strategy={strategy}",
                                                      "per_device_train_batch_size=4", "validation_share=0"])
    rows = data.load_dataset_file("demo").records()
    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    dataset = tokenized.encode_split(tokenizer, rows, assistant_only=True)
    plan = hardware.plan(hardware.detect(), TrainingSettings(precision="fp32", gradient_checkpointing="off"))
    trainer = SFTTrainer(model=models.load_model(str(tiny_model_dir)), args=trl_args.to_sft_config(settings, plan, str(tmp_path)),
                         train_dataset=dataset, processing_class=tokenizer, peft_config=trl_args.to_lora_config(settings))
    seen, padding, real = [], 0, 0
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        padding += int((mask == 0).sum())
        real += int(mask.sum())
        for ids, m in zip(batch["input_ids"], mask):
            seen.append(tuple(ids[m.bool()].tolist()))
    return seen, padding / (padding + real)


def test_grouped_batches_cover_the_same_samples_in_another_order_with_less_padding(tiny_model_dir, tmp_path):
    grouped, grouped_padding = epoch_samples(tiny_model_dir, tmp_path / "g", "group_by_length")
    shuffled, random_padding = epoch_samples(tiny_model_dir, tmp_path / "r", "random")
    assert Counter(grouped) == Counter(shuffled) and len(grouped) == 191
    assert grouped != shuffled
    assert grouped_padding < random_padding / 2, (grouped_padding, random_padding)
