"""What the orders app announces to the rest of the shop, so that it imports none of the apps
that listen (the dashboards keep their sales tables with these; see
storefront/dashboards/signals.py).

Both are sent with Signal.send, synchronously, inside the transaction that made the change: a
receiver's writes commit or roll back with the order, and an exception in a receiver propagates
and rolls the whole change back. A receiver with work for after the commit registers it with
transaction.on_commit itself.
"""

from __future__ import annotations

from django.dispatch import Signal

# An order was placed. Sent last in the checkout's transaction, once the order, its lines and the
# stock decrements are written, so a receiver's row locks (the sales tables' day row) are held
# for as little of the checkout as possible. Arguments:
#   sender: the Order class;
#   order: the saved Order;
#   lines: list[OrderLine], its saved lines, in product id order.
order_placed = Signal()

# Staff cancelled orders. Their status was set with QuerySet.update(), which sends no model
# signal; this is sent in the cancelling transaction after that update (the stock is returned
# by then). Arguments:
#   sender: the Order class;
#   orders: list[Order], the orders this call cancelled (status CANCELLED, in id order); orders
#       already cancelled or refused are not in it.
orders_cancelled = Signal()
