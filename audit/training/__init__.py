"""``vetcache train`` and the verifier release gate: labelled pairs with provenance (files,
the audit ledger, reviews, feedback), family-grouped splits, the cross-encoder trainer, the
model card, and the gate ``vetcache eval --verifier`` applies.

    records       TrainingPair, its cohorts and provenance
    files         pairs from labelled pair files (the 8-column TSV, and what audit.pairs reads)
    ledger        pairs from the audit ledger's verdicts, reviews and feedback
    splits        train / validation / test by family, stratified by cohort
    hyperparameters  every training default, in one place
    trainer       the CrossEncoderTrainer run (torch, imported lazily)
    metrics       FP share of served hits, recall and AUC per cohort; the operating point
    card          the model card (vetcache-verifier.json)
    scorer        the Scorer protocol and its torch CrossEncoder implementation
    pipeline      sources -> splits -> training -> operating point -> folder + card
    gate          the release gate: a candidate's cohorts against the limits and the model in force
    embedder_*    the same for the embedding model: contrastive fine-tuning (trainer), margins
                  per cohort (metrics), its card, pipeline and gate
"""
