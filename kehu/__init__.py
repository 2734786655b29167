"""Kehu (客户): a CRM for the customer-manager system of large Chinese enterprises."""

__version__ = "0.1.0"
