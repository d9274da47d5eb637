"""The seed scenario's models.mp, as a project grows: the initial models, then a phone
field, then discount_cents (SPEC §4's example files 001, 002 and 003)."""

SEED = '''enum InvoiceStatus { DRAFT, PENDING, PAID, CANCELED }
enum UserRole {
    ADMIN
    CUSTOMER
    STAFF
}

model Customer extends Model {
    id = AutoField()
    email = CharField(max_length=255, unique=true)
    name = CharField(120)
    signup_at = DateTimeField(auto_now_add=true)
    is_active = BooleanField(default=true)
    role = EnumField(UserRole, default=UserRole.ADMIN)
    table = "lt_customers"
}

model Invoice extends Model {
    id = AutoField()
    customer = ForeignKey(Customer, on_delete=CASCADE)
    total = DecimalField(12, 2)
    status = EnumField(InvoiceStatus, default=InvoiceStatus.DRAFT)
    table = "lt_invoices"
}
'''
WITH_PHONE = SEED.replace("    name = CharField(120)\n",
                          "    name = CharField(120)\n    phone = CharField(max_length=20, null=true)\n")
WITH_DISCOUNT = WITH_PHONE.replace("    total = DecimalField(12, 2)\n",
                                   "    total = DecimalField(12, 2)\n    discount_cents = IntegerField(default=0)\n")
