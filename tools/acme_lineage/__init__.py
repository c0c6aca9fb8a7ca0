"""Lineage impact from recorded OpenLineage events: what is downstream of a table or file, and where it comes from.

python -m acme_lineage impact core.fact_payments [--upstream] [--html OUT.html] [--png OUT.png]
python -m acme_lineage sql "SELECT ... FROM lineage_edges"

Reads the JSONL file the OpenLineage file transport appends to (see ``events``);
no Marquez or database needed.
"""
