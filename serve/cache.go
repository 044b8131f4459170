package serve

import (
	"container/list"
	"sync"
)

// lru is a least-recently-used cache bounded by a byte budget and an entry count, whichever is
// reached first. An entry larger than the whole budget is not kept (the caller still has it).
type lru[V any] struct {
	mu         sync.Mutex
	maxBytes   int64
	maxEntries int
	bytes      int64
	order      *list.List // front: most recently used
	entries    map[string]*list.Element
}

type lruEntry[V any] struct {
	key   string
	val   V
	bytes int64
}

func newLRU[V any](maxBytes int64, maxEntries int) *lru[V] {
	return &lru[V]{maxBytes: maxBytes, maxEntries: maxEntries, order: list.New(), entries: map[string]*list.Element{}}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[V]) put(key string, val V, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.bytes -= e.Value.(*lruEntry[V]).bytes
		c.order.Remove(e)
		delete(c.entries, key)
	}
	if bytes > c.maxBytes || c.maxEntries < 1 {
		return
	}
	c.entries[key] = c.order.PushFront(&lruEntry[V]{key: key, val: val, bytes: bytes})
	c.bytes += bytes
	c.evict()
}

// grow adds delta bytes to the entry under key when it still holds val (its value grew after
// put), then evicts as put does, the entry itself included when it alone exceeds the budget.
func (c *lru[V]) grow(key string, val V, same func(a, b V) bool, delta int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !same(e.Value.(*lruEntry[V]).val, val) {
		return
	}
	e.Value.(*lruEntry[V]).bytes += delta
	c.bytes += delta
	c.evict()
}

// evict drops least recently used entries until the cache is within its bounds.
func (c *lru[V]) evict() {
	for c.bytes > c.maxBytes || c.order.Len() > c.maxEntries {
		last := c.order.Back()
		ent := last.Value.(*lruEntry[V])
		c.order.Remove(last)
		delete(c.entries, ent.key)
		c.bytes -= ent.bytes
	}
}

// size returns the number of entries and their bytes.
func (c *lru[V]) size() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}
