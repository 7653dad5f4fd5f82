"""The demo: simulated client clusters played into Kafka (``kgcelery demo``).

``cluster`` is the pure, seeded simulator (built from ``world``, ``objects``,
``topology``, ``kubelet``, ``controllers``, ``signals``, the failure scenarios in
``scenarios`` and ``rollouts``, and normal life in ``background`` and ``voices``);
``producer`` is the only part that does I/O.
"""
