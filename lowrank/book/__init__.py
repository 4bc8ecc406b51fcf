"""What only the book needs: the results cell and glue (:mod:`~lowrank.book.report`), the
plotting theme (:mod:`~lowrank.book.plotting`), each chapter's banner
(:mod:`~lowrank.book.profiles`) and the paper's numbers, in one place
(:mod:`~lowrank.book.paper`). May import every layer.
"""
