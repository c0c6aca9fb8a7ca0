"""`make bench`: the payments load against raw COPY, pandas and DbApiHook.insert_rows, on one generated file."""
