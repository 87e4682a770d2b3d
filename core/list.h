/*
 * list: an intrusive, circular, doubly linked list. A node is embedded in its
 * owner and can unlink itself from whatever list holds it in O(1), which is
 * what lets a request move between a service's waiting list, a connection's
 * pending list and a completion queue without knowing which one it is in.
 */
#ifndef PG_CORE_LIST_H
#define PG_CORE_LIST_H

#include <stddef.h>

typedef struct list_node {
    struct list_node *prev;
    struct list_node *next;
} list_node_t;

#define LIST_OWNER(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

static inline void list_init(list_node_t *head) { head->prev = head->next = head; }
static inline int list_empty(const list_node_t *head) { return head->next == head; }
/* A node that was initialized or removed is in no list. */
static inline int list_linked(const list_node_t *node) { return node->next != node; }

static inline void list_push_back(list_node_t *head, list_node_t *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void list_remove(list_node_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

static inline list_node_t *list_first(const list_node_t *head)
{
    return list_empty(head) ? NULL : head->next;
}

/* Moves every node of `from` to the end of `to`; `from` ends empty. */
static inline void list_move_all(list_node_t *to, list_node_t *from)
{
    if (list_empty(from))
        return;
    from->next->prev = to->prev;
    from->prev->next = to;
    to->prev->next = from->next;
    to->prev = from->prev;
    list_init(from);
}

#endif
