-- The application (OLTP) database, as in CONTRACT.md §1.1.
-- Created by the sample-data generator for local runs and tests.
CREATE TABLE customers (
    customer_id bigint PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE products (
    product_id bigint PRIMARY KEY,
    sku        text NOT NULL UNIQUE,
    name       text NOT NULL,
    category   text NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    currency   char(3) NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE orders (
    order_id    bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    status      text NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled', 'refunded')),
    currency    char(3) NOT NULL,
    order_total numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE order_items (
    order_id   bigint NOT NULL REFERENCES orders,
    line_no    int NOT NULL,
    product_id bigint NOT NULL REFERENCES products,
    quantity   int NOT NULL CHECK (quantity > 0),
    unit_price numeric(12, 2) NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- "updated_at moves forward on every change and is indexed" (the hourly sync reads by it).
CREATE INDEX customers_updated_at ON customers (updated_at);
CREATE INDEX products_updated_at ON products (updated_at);
CREATE INDEX orders_updated_at ON orders (updated_at);
CREATE INDEX order_items_updated_at ON order_items (updated_at);
