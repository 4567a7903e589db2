// Test shim for wix-data: collections come from globalThis.__wixCollections (name → items), queried
// with the few operators the kit uses, paged like Velo (hasNext/next).
function page(items, size, offset) {
  const slice = items.slice(offset, offset + size);
  return {
    items: slice,
    hasNext: () => offset + size < items.length,
    next: async () => page(items, size, offset + size),
  };
}

class Query {
  constructor(name, filters = [], order = null, size = 50) {
    Object.assign(this, { name, filters, order, size });
  }
  gt(field, value) {
    return new Query(this.name, [...this.filters, (item) => item[field] > value], this.order, this.size);
  }
  ascending(field) {
    return new Query(this.name, this.filters, field, this.size);
  }
  limit(size) {
    return new Query(this.name, this.filters, this.order, size);
  }
  async find() {
    const all = (globalThis.__wixCollections?.[this.name] ?? []).filter((item) => this.filters.every((f) => f(item)));
    if (this.order) all.sort((a, b) => a[this.order] - b[this.order]);
    globalThis.__wixQueries = (globalThis.__wixQueries ?? 0) + 1;
    return page(all, this.size, 0);
  }
}

export default { query: (name) => new Query(name) };
