"""Lab-made fine-tunes of real models: named recipes (`recipes`) trained with TRL, with PEFT
LoRA as an option merged into a plain HF folder (`train`)."""
